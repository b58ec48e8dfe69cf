# inferfleet: the entry point for building, testing and running the local fleet.
# A fresh machine needs only Go (and apt for nothing but optional extras).

CONTROLLER_GEN ?= go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
BIN_DIR        := $(CURDIR)/bin
FLEET_DIR      ?= $(CURDIR)/.fleet
GO_TEST_FLAGS  ?=
# Flags of the hub binary, here and in the Dockerfile (a test keeps them equal).
# The version stamped into the hub and fleetctl: the nearest v* tag (git describe), else
# v0.0.0-<commit>; -dirty when the tree has changes.
VERSION ?= $(shell git describe --tags --match 'v*' --dirty 2>/dev/null || echo v0.0.0-$$(git describe --always --dirty 2>/dev/null || echo unknown))
VERSION_LDFLAGS := -X github.com/inferfleet/inferfleet/internal/version.Version=$(VERSION)
HUB_BUILD_FLAGS := -trimpath -ldflags="-s $(VERSION_LDFLAGS)"
export KUBEBUILDER_ASSETS := $(BIN_DIR)
export INFERFLEET_BIN_DIR := $(BIN_DIR)

.PHONY: all
all: build

##@ Development

.PHONY: manifests
manifests: ## Regenerate CRDs and RBAC from the API types and markers, and copy the external CRDs and the chart's.
	$(CONTROLLER_GEN) crd:allowDangerousTypes=true paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=inferfleet-hub paths=./... output:rbac:artifacts:config=config/rbac
	bash hack/external-crds.sh
	bash hack/chart-sync.sh
	$(MAKE) api-docs

CRD_REF_DOCS ?= go run github.com/elastic/crd-ref-docs@v0.2.0

.PHONY: api-docs
api-docs: ## Regenerate docs/api-reference.md from the API types (crd-ref-docs).
	$(CRD_REF_DOCS) --source-path=./api --config=hack/api-docs/config.yaml --renderer=markdown --output-path=docs/api-reference.md --log-level=error

.PHONY: generate
generate: ## Regenerate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: fmt
fmt:
	go fmt ./...

.PHONY: vet
vet:
	go vet ./...

.PHONY: bins
bins: ## Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok, helm and promtool into bin/ (once).
	bash hack/build-bins.sh

.PHONY: build
build: ## Build the hub manager and fleetctl into bin/ (and bin/kubectl-fleet, for `kubectl fleet`).
	CGO_ENABLED=0 go build $(HUB_BUILD_FLAGS) -o $(BIN_DIR)/hub ./cmd/hub
	go build -ldflags="$(VERSION_LDFLAGS)" -o $(BIN_DIR)/fleetctl ./cmd/fleetctl
	ln -sf fleetctl $(BIN_DIR)/kubectl-fleet

##@ Test

.PHONY: test
test: bins build ## Run every test: unit, envtest (real kube-apiserver) and the e2e suites on the local fleet, then a bounded fuzz run and the cross-compilation check.
	go vet ./...
	go test $(GO_TEST_FLAGS) -count=1 -timeout 30m ./...
	$(MAKE) fuzz
	$(MAKE) cross

# The binaries users run on their own machines build for these platforms too.
CROSS_PLATFORMS ?= darwin/arm64 linux/arm64

.PHONY: cross
cross: ## Compile ./cmd/... for CROSS_PLATFORMS (a check: nothing is written; flags as `make release`'s, which shares its build cache).
	@for p in $(CROSS_PLATFORMS); do echo "go build ./cmd/... for $$p"; \
	  CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} go build -trimpath ./cmd/... || exit 1; done

# Each target also runs its seeds and committed corpus (testdata/fuzz) in every go test.
FUZZ_TIME ?= 45s

.PHONY: fuzz
fuzz: bins ## Fuzz API validation and the renderers against a real API server, FUZZ_TIME each.
	go test -run '^$$' -fuzz '^FuzzValidate$$' -fuzztime $(FUZZ_TIME) -parallel 1 ./api/v1alpha1
	go test -run '^$$' -fuzz '^FuzzRender$$' -fuzztime $(FUZZ_TIME) -parallel 1 ./controllers/render

# The default run (fleets of 2, 4 and 8 members, 2 runs each, a 5-minute steady-state window)
# takes an hour or more on 2 cores; the committed results (2 and 4 members, -window=2m) took
# 42 minutes. A fleet size that does not fit in memory is left out and named in the results.
BENCH_FLAGS ?= -members=2,4,8 -services=1,10,100 -runs=2 -window=5m

.PHONY: e2e-kind
e2e-kind: ## The shared e2e suites on kind clusters (installs and removes Docker, builds a node image, where needed; not part of `make test`).
	bash hack/e2e-kind.sh $(ARGS)

.PHONY: bench
bench: bins ## Benchmark the hub on the local fleet; writes bench/results.json and bench/results.md.
	go test -tags bench -run '^TestFleetBench$$' -count=1 -timeout 120m -v ./bench -args $(BENCH_FLAGS)

.PHONY: bench-smoke
bench-smoke: bins ## The benchmark harness at its smallest (also part of `make test`).
	go test -run '^TestSmoke$$' -count=1 -v ./bench

##@ Run

.PHONY: demo
demo: bins build ## Local fleet (hub + 2 members) up, hub running, two-region sample applied, status shown.
	$(BIN_DIR)/fleetctl demo --dir $(FLEET_DIR)

# `make release`: the hub image for IMAGE_PLATFORMS (assembled without a container engine),
# fleetctl for RELEASE_PLATFORMS, the chart packaged, and their checksums, into DIST_DIR.
DIST_DIR          ?= $(CURDIR)/dist
IMAGE_PLATFORMS   ?= linux/amd64 linux/arm64
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
IMAGE_REPOSITORY  ?= inferfleet/hub

.PHONY: release
release: ## Build a release into dist/: the multi-platform hub image (OCI layout, and docker archives), fleetctl binaries, the chart package, SHA256SUMS.
	bash hack/build-bins.sh helm
	rm -rf $(DIST_DIR) && mkdir -p $(DIST_DIR)/.build
	@for p in $(IMAGE_PLATFORMS); do echo "hub for $$p"; \
	  CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} go build $(HUB_BUILD_FLAGS) -o $(DIST_DIR)/.build/hub-$${p%/*}-$${p#*/} ./cmd/hub || exit 1; done
	@for p in $(RELEASE_PLATFORMS); do echo "fleetctl for $$p"; \
	  CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} go build $(HUB_BUILD_FLAGS) -o $(DIST_DIR)/fleetctl-$(VERSION)-$${p%/*}-$${p#*/} ./cmd/fleetctl || exit 1; done
	$(BIN_DIR)/helm package deploy/helm/inferfleet --version $(patsubst v%,%,$(VERSION)) --app-version $(VERSION) -d $(DIST_DIR)
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || echo 0) go run ./internal/cmd/release --dist $(DIST_DIR) \
	  --version $(VERSION) --revision $$(git rev-parse HEAD 2>/dev/null) --repository $(IMAGE_REPOSITORY) \
	  $(foreach p,$(IMAGE_PLATFORMS),--hub $(p)=$(DIST_DIR)/.build/hub-$(subst /,-,$(p)))
	rm -rf $(DIST_DIR)/.build

CRANE ?= go run github.com/google/go-containerregistry/cmd/crane@v0.22.1

.PHONY: push
push: ## Push the image of `make release` (every platform) to IMAGE_REPOSITORY:VERSION with crane, on docker's credentials.
	$(CRANE) push $(DIST_DIR)/hub-oci $(IMAGE_REPOSITORY):$(VERSION)

.PHONY: image
image: ## Build the hub image (needs a container engine).
	docker build --build-arg VERSION=$(VERSION) -t inferfleet/hub:dev .

.PHONY: up
up: bins build ## Start the local fleet and keep it running in the background.
	$(BIN_DIR)/fleetctl up --detach --dir $(FLEET_DIR)

.PHONY: down
down: ## Stop a background local fleet.
	$(BIN_DIR)/fleetctl down --dir $(FLEET_DIR)

.PHONY: help
help:
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-10s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
