# The pipeline's build, test and run entry points. `make help` lists them.
GO      ?= go
BIN     := bin
# -race needs cgo; it is skipped where the toolchain cannot do it.
RACE    ?= $(shell CGO_ENABLED=1 $(GO) env CGO_ENABLED 2>/dev/null | grep -q 1 && echo -race)
TESTFLAGS ?= -timeout 20m
BENCHTIME ?= 1x
BENCHCOUNT ?= 5
ARGS    ?=

# Our binaries: name = package.
CMDS := mockstagram-sim=./simulator/cmd/mockstagram-sim \
        mockstagram_exporter=./exporter/cmd/mockstagram_exporter \
        exporter-loadtest=./exporter/cmd/exporter-loadtest \
        mockstagram-stack=./deploy/cmd/mockstagram-stack \
        rankd=./rankd/cmd/rankd

# VictoriaMetrics components, pinned by the tool directives in go.mod and
# built from the module proxy. They depend on go.mod only, so a warm build
# does not rebuild them.
VM_TOOLS := victoria-metrics vmagent vmalert vmalert-tool
VM_PKG   := github.com/VictoriaMetrics/VictoriaMetrics/app

# Modules of their own under the repo (a dependency graph that would clash
# with the root module's); test and lint cover them too.
SUBMODULES := $(patsubst %/go.mod,%,$(wildcard grafana/plugin/go.mod deploy/validate/go.mod))

.PHONY: help build tools test bench lint run loadtest clean

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: tools ## build every binary into bin/
	@mkdir -p $(BIN)
	@for c in $(CMDS); do name=$${c%%=*}; pkg=$${c#*=}; \
		echo "go build -o $(BIN)/$$name $$pkg"; $(GO) build -o $(BIN)/$$name $$pkg || exit 1; done

tools: $(addprefix $(BIN)/,$(VM_TOOLS)) ## build the pinned VictoriaMetrics binaries into bin/

$(addprefix $(BIN)/,$(VM_TOOLS)): $(BIN)/%: go.mod go.sum
	@mkdir -p $(BIN)
	$(GO) build -o $@ $(VM_PKG)/$*

test: tools ## run every test (with the race detector where available)
	$(GO) test $(RACE) $(TESTFLAGS) ./...
	@for m in $(SUBMODULES); do echo "cd $$m && $(GO) test $(RACE) $(TESTFLAGS) ./..."; \
		(cd $$m && $(GO) test $(RACE) $(TESTFLAGS) ./...) || exit 1; done

bench: ## run the benchmarks (BENCHCOUNT runs each; compare with benchstat)
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) ./...

lint: ## go vet and gofmt
	$(GO) vet ./...
	@for m in $(SUBMODULES); do echo "cd $$m && $(GO) vet ./..."; (cd $$m && $(GO) vet ./...) || exit 1; done
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

run: build ## run the simulator and one exporter on loopback (ARGS='...' for the launcher)
	$(BIN)/mockstagram-stack $(ARGS)

loadtest: build ## measure one exporter polling 1M influencers a minute (ARGS='...' to change)
	$(BIN)/exporter-loadtest $(ARGS)

clean: ## remove built binaries (data/ is kept)
	rm -rf $(BIN)
