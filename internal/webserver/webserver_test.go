package webserver

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestBasicAuth serves through a web config file with basic auth, as
// --web.config.file does, and checks that credentials are enforced.
func TestBasicAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(cfgFile, []byte("basic_auth_users:\n  scraper: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	srv, err := Listen(Config{ListenAddresses: []string{"127.0.0.1:0"}, WebConfigFile: cfgFile}, h, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	url := "http://" + srv.Addrs()[0] + "/"
	get := func(user, pass string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		var resp *http.Response
		for deadline := time.Now().Add(5 * time.Second); ; {
			if resp, err = http.DefaultClient.Do(req); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("", ""); c != http.StatusUnauthorized {
		t.Fatalf("no credentials: %d, want 401", c)
	}
	if c := get("scraper", "wrong"); c != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d, want 401", c)
	}
	if c := get("scraper", "s3cret"); c != http.StatusOK {
		t.Fatalf("right password: %d, want 200", c)
	}
}

func TestListenErrors(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if _, err := Listen(Config{}, http.NotFoundHandler(), log); err == nil || err.Error() != "no listen address; set --web.listen-address" {
		t.Fatalf("no address: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "web.yml")
	os.WriteFile(bad, []byte("tls_server_config: [\n"), 0o600)
	if _, err := Listen(Config{ListenAddresses: []string{"127.0.0.1:0"}, WebConfigFile: bad}, http.NotFoundHandler(), log); err == nil {
		t.Fatal("a broken web config must be refused before serving")
	}
	first, err := Listen(Config{ListenAddresses: []string{"127.0.0.1:0"}}, http.NotFoundHandler(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer first.closeListeners()
	if _, err := Listen(Config{ListenAddresses: []string{first.Addrs()[0]}}, http.NotFoundHandler(), log); err == nil {
		t.Fatal("a port in use must be reported")
	}
}

func TestAcceptsGzip(t *testing.T) {
	f := func(h string, want bool) {
		t.Helper()
		if got := AcceptsGzip(h); got != want {
			t.Fatalf("AcceptsGzip(%q) = %v, want %v", h, got, want)
		}
	}
	f("", false)
	f("gzip", true)
	f("identity", false)
	f("deflate, GZIP;q=0.5", true)
	f("gzip;q=0", false)
	f("gzip; q=0, identity", false)
	f("br,gzip", true)
}
