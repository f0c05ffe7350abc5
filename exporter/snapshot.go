package exporter

import (
	"net/http"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/snapwire"
)

// SnapshotPath serves the compact binary snapshot rankd reads; snapwire
// owns the route, so the exporter and rankd cannot disagree on it.
const SnapshotPath = snapwire.Path

// serveSnapshot writes every owned influencer's latest sample and verdict,
// 24 bytes each (internal/snapwire).
func (e *Exporter) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	pks := e.store.PKs()
	w.Header().Set("Content-Type", "application/octet-stream")
	err := snapwire.Write(w, snapwire.Header{First: pks.First, Step: pks.Step, N: uint32(pks.Len)}, func(i int) snapwire.Record {
		smp, _ := e.store.Get(i)
		v := e.store.Verdict(i)
		return snapwire.Record{Followers: smp.Followers, Following: smp.Following, TimeMs: smp.TimeMs,
			VerdictMs: v.TimeMs, Suspicious: v.Suspicious}
	})
	if err != nil {
		e.log.Debug("snapshot aborted", "remote", r.RemoteAddr, "err", err)
	}
}
