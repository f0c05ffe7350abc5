package validate

import (
	"context"
	"path/filepath"
	"sort"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// LoadCompose loads dir/compose.yaml as `docker compose config` does: the
// .env file next to it, then env on top of it (env stands for the shell's
// environment and wins), profiles from COMPOSE_PROFILES, interpolation,
// normalisation and the consistency checks.
func LoadCompose(ctx context.Context, dir string, env map[string]string) (*types.Project, error) {
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "compose.yaml")},
		cli.WithWorkingDirectory(dir),
		cli.WithEnv(kv),
		cli.WithEnvFiles(),
		cli.WithDotEnv,
		cli.WithDefaultProfiles(),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(ctx)
}
