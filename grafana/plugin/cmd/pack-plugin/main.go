// Command pack-plugin packs the built plugin folder as the zip Grafana
// installs (`make plugin` runs it).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/alecthomas/kong"

	"github.com/mockstagram-exporter/mockstagram-exporter/grafana/plugin/internal/pack"
)

// CLI is the command line.
type CLI struct {
	Dist   string `name:"dist" default:"dist" type:"existingdir" help:"Built plugin folder (frontend build and backend binaries)."`
	OutDir string `name:"out-dir" default:"." help:"Directory to write <id>-<version>.zip into."`
}

// Run writes the zip and prints its path.
func (c *CLI) Run() error {
	m, err := pack.ReadMeta(c.Dist)
	if err != nil {
		return err
	}
	out := filepath.Join(c.OutDir, m.ID+"-"+m.Info.Version+".zip")
	if _, err := pack.Zip(c.Dist, out); err != nil {
		return err
	}
	fmt.Println(out)
	return nil
}

func main() {
	var cli CLI
	ctx := kong.Parse(&cli, kong.Description("Pack the built Grafana plugin folder as its installable zip."))
	if err := ctx.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "pack-plugin:", err)
		os.Exit(1)
	}
}
