# The pipeline's build, test and run entry points. `make help` lists them.
SHELL   := /bin/bash
GO      ?= go
BIN     := bin
# -race needs cgo; it is skipped where the toolchain cannot do it.
RACE    ?= $(shell CGO_ENABLED=1 $(GO) env CGO_ENABLED 2>/dev/null | grep -q 1 && echo -race)
# Packages build and test in parallel (go test's default -p, one per core):
# the tests that used to wait on one-second schedules run on a fake clock
# (testing/synctest over internal/memnet), so a busy core cannot make them
# late.
TESTFLAGS ?= -timeout 15m
BENCHTIME ?= 1x
BENCHCOUNT ?= 5
ARGS    ?=

# Our binaries: name = package.
CMDS := mockstagram-sim=./simulator/cmd/mockstagram-sim \
        mockstagram_exporter=./exporter/cmd/mockstagram_exporter \
        exporter-loadtest=./exporter/cmd/exporter-loadtest \
        mockstagram-stack=./deploy/cmd/mockstagram-stack \
        bench-stack=./deploy/cmd/bench-stack \
        bench-storage=./deploy/cmd/bench-storage \
        mockstagram-chaos=./deploy/cmd/mockstagram-chaos \
        rankd=./rankd/cmd/rankd \
        rankd-loadtest=./rankd/cmd/rankd-loadtest

# VictoriaMetrics components, pinned by the tool directives in go.mod and
# built from the module proxy. They depend on go.mod only, so a warm build
# does not rebuild them.
VM_TOOLS := victoria-metrics vmagent vmalert vmalert-tool
VM_PKG   := github.com/VictoriaMetrics/VictoriaMetrics/app

# Modules of their own under the repo (a dependency graph that would clash
# with the root module's); test and lint cover them too.
SUBMODULES := $(patsubst %/go.mod,%,$(wildcard grafana/plugin/go.mod deploy/validate/go.mod))

.PHONY: help build tools test fuzz chaos bench bench-gains-vm bench-scale bench-stack bench-storage bench-rankd-http lint run loadtest clean plugin plugin-validate

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: tools ## build every binary into bin/
	@mkdir -p $(BIN)
	@for c in $(CMDS); do name=$${c%%=*}; pkg=$${c#*=}; \
		echo "go build -o $(BIN)/$$name $$pkg"; $(GO) build -o $(BIN)/$$name $$pkg || exit 1; done

tools: $(addprefix $(BIN)/,$(VM_TOOLS)) ## build the pinned VictoriaMetrics binaries into bin/

$(addprefix $(BIN)/,$(VM_TOOLS)): $(BIN)/%: go.mod go.sum
	@mkdir -p $(BIN)
	$(GO) build -o $@ $(VM_PKG)/$*

# The root module and the submodules are tested at the same time: the
# root's end-to-end tests spend minutes waiting on real processes, time in
# which the submodules compile. Each line is prefixed with its module; the
# target fails if any module does.
test: tools ## run every test (with the race detector where available)
	@pids=""; for m in . $(SUBMODULES); do \
		echo "cd $$m && $(GO) test $(RACE) $(TESTFLAGS) ./..."; \
		( set -o pipefail; cd $$m && $(GO) test $(RACE) $(TESTFLAGS) ./... 2>&1 | sed -u "s|^|$$m: |" ) & pids="$$pids $$!"; done; \
	rc=0; for p in $$pids; do wait $$p || rc=1; done; \
	if [ $$rc -ne 0 ]; then echo "make test: FAIL (see the lines above marked FAIL)"; fi; exit $$rc

# Fuzz targets, one per input that comes from outside (docs/operations.md):
# Target=package. A plain `go test` runs their seed corpora (f.Add and
# testdata/fuzz/); `make fuzz` fuzzes each for FUZZTIME, one after another.
# A failure leaves the input in the package's testdata/fuzz/<Target>/.
FUZZ_TARGETS := FuzzDecode=./exporter \
                FuzzStateLoad=./exporter \
                FuzzExposition=./exporter \
                FuzzJSNumber=./simulator \
                FuzzRead=./internal/snapwire \
                FuzzAPI=./rankd
FUZZTIME     ?= 1m
# Minimising each new input may otherwise take a minute of a short run.
FUZZMINIMIZE ?= 5s
FUZZFLAGS    ?=

fuzz: ## fuzz every outside input, FUZZTIME each (default 1m; FUZZFLAGS=-parallel=1 spares the cores)
	@for t in $(FUZZ_TARGETS); do name=$${t%%=*}; pkg=$${t#*=}; \
		echo "go test -run '^$$' -fuzz '^$$name\$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) $(FUZZFLAGS) $$pkg"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) $(FUZZFLAGS) $$pkg || exit 1; done

bench: ## run the benchmarks (BENCHCOUNT runs each; compare with benchstat)
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) ./...

# The VictoriaMetrics cost of rankd's gains at 1M: imports 14M samples into
# a real VictoriaMetrics (about a minute), then reads 1M baselines
# three times, and starts rankd with four windows for its RSS. Not
# in `make bench` (too slow); docs/rankd.md, "Gains performance".
bench-gains-vm: tools ## measure the VictoriaMetrics CPU of rankd's gain baselines at 1M and rankd's RSS with gains (a few minutes)
	$(GO) test -tags vmbench -run '^$$' -bench BaselineRead1M -benchtime 3x -timeout 30m ./rankd/

lint: ## go vet and gofmt
	$(GO) vet ./...
	@for m in $(SUBMODULES); do echo "cd $$m && $(GO) vet ./..."; (cd $$m && $(GO) vet ./...) || exit 1; done
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

run: build ## run the whole pipeline locally: simulator, exporters, VictoriaMetrics, vmalert, rankd (ARGS="..." for the launcher)
	$(BIN)/mockstagram-stack $(ARGS)

loadtest: build ## measure one exporter polling 1M influencers a minute (ARGS='...' to change)
	$(BIN)/exporter-loadtest $(ARGS)

chaos: build ## kill and break every part of a 100k pipeline, measure recovery and loss (root; about 20 min, ARGS=--short about 12)
	$(BIN)/mockstagram-chaos $(ARGS)

bench-stack: build ## measure the whole pipeline at 1M per process: CPU, RSS, rows per poll, rule times, cache resets, alerts, dashboard queries, then stored samples against successful polls after a clean stop (about 16 minutes; ARGS='...'; JSON in data/bench-stack/)
	$(BIN)/bench-stack --json=data/bench-stack/result.json $(ARGS)

bench-storage: build ## measure VictoriaMetrics' disk use: 100k influencers x 1 day of synthetic history imported and merged, extrapolated to 1M for a day, month and year, and the hourly tier (ARGS='...'; JSON in data/bench-storage/)
	$(BIN)/bench-storage --json=data/bench-storage/result.json $(ARGS)

bench-rankd-http: build ## measure rankd's HTTP latency and CPU per request with wrk, against the API and its empty /-/healthy (ARGS='--generator=h2load' for a fixed rate)
	$(BIN)/rankd-loadtest $(ARGS)

# The scaling proof (docs/scaling.md). Each run is shards:simulators:influencers,
# polled once a minute: first 1M split over 1, 2 and 4 shards, then 1M per
# shard on 2 and 4 shards. Each run prints its table and writes JSON to
# data/bench-scale/.
SCALE_RUNS ?= 1:1:1000000 2:1:1000000 4:1:1000000 2:2:2000000 4:2:4000000
bench-scale: build ## measure exporter throughput and CPU per poll for 1, 2 and 4 shards (about 20 minutes; JSON in data/bench-scale/)
	@mkdir -p data/bench-scale
	@for r in $(SCALE_RUNS); do s=$${r%%:*}; rest=$${r#*:}; m=$${rest%%:*}; n=$${rest#*:}; \
		echo "bin/exporter-loadtest --shards=$$s --sims=$$m --pk.count=$$n --cycles=2 --scrape=false $(ARGS)"; \
		$(BIN)/exporter-loadtest --shards=$$s --sims=$$m --pk.count=$$n --cycles=2 --scrape=false --work.dir=data/bench-scale/work \
			--json=data/bench-scale/shards-$$s-sims-$$m-pks-$$n.json $(ARGS) || exit 1; done

clean: ## remove built binaries (data/ is kept)
	rm -rf $(BIN)

# The Grafana datasource plugin (a module of its own, see docs/grafana-plugin.md):
# frontend from npm, backend for linux amd64 and arm64, packed as the zip
# Grafana installs, into dist/ at the repo root.
PLUGIN_DIR     := grafana/plugin
PLUGIN_VERSION  = $(shell node -p "require('./$(PLUGIN_DIR)/package.json').version")
PLUGIN_ZIP      = dist/mockstagram-rankd-datasource-$(PLUGIN_VERSION).zip

plugin: ## build the Grafana plugin into grafana/plugin/dist and pack dist/mockstagram-rankd-datasource-<version>.zip
	rm -rf $(PLUGIN_DIR)/dist $(PLUGIN_ZIP)
	cd $(PLUGIN_DIR) && npm ci --no-audit --no-fund && npm run build
	cd $(PLUGIN_DIR) && $(GO) tool mage -v build:linux build:linuxARM64
	cd $(PLUGIN_DIR) && $(GO) run ./cmd/pack-plugin --dist=dist --out-dir=$(CURDIR)/dist

plugin-validate: plugin ## check the plugin zip with Grafana's plugin validator (pinned in grafana/plugin/tools/go.mod), offline
	@mkdir -p $(BIN)
	cd $(PLUGIN_DIR)/tools && $(GO) build -o $(CURDIR)/$(BIN)/plugincheck2 github.com/grafana/plugin-validator/pkg/cmd/plugincheck2
	$(BIN)/plugincheck2 -sourceCodeUri file://$(CURDIR)/$(PLUGIN_DIR) $(PLUGIN_ZIP)
