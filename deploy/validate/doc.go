// Package validate checks the multi-node deployment files without a
// container engine. Its tests load deploy/compose with the compose-spec
// loader, build deploy/k8s with kustomize and decode every object strictly
// into the Kubernetes API types, parse deploy/docker/Dockerfile with
// BuildKit's parser and linter, and run the real VictoriaMetrics binaries
// (bin/, make tools) over the scrape config and rules in dry-run mode. They
// then check that the files agree with each other, with the flags our
// binaries accept and with the repository: shard counts, scrape targets,
// ports, volumes, images and mounted paths.
//
// The package's code (loaders, flag parsing, name resolution) is here;
// the checks are its tests.
package validate
