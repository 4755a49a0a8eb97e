# homeostat — build, test, benchmark, demo.
# Every target runs with the Go toolchain fluxcd/pkg/ssa needs.
export GOTOOLCHAIN := go1.27.3
export GOFLAGS := -buildvcs=false

CONTROLLER_GEN := go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.20.1
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
GO_TEST_FLAGS ?= -count=1 -timeout 45m

.PHONY: all build tools generate schemas fmt vet lint verify test bench fuzz demo clean

all: build

## build: bin/homeostat
build:
	go build -ldflags "$(LDFLAGS)" -o bin/homeostat ./cmd/homeostat

## tools: etcd, kube-apiserver, kubectl and minio built from Go modules, cached in ~/.cache/homeostat
tools:
	hack/tools.sh etcd kube-apiserver kubectl minio

## generate: deepcopy functions and CRD manifests from the API types
generate:
	$(CONTROLLER_GEN) object paths=./render/api/...
	$(CONTROLLER_GEN) crd paths=./render/api/... output:crd:artifacts:config=deploy/crds

## schemas: the built-in kinds' OpenAPI schemas from the test kube-apiserver, embedded for offline validate
schemas: tools
	go run ./hack/openapi render/schema/builtin.json.gz

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	go vet ./...

## lint: golangci-lint with the complexity caps of .golangci.yml
lint:
	go run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0 run ./...

## verify: fails when generate or fmt would change the tree, or lint finds something
verify: generate fmt vet lint
	git diff --exit-code

## test: every test, against the real API server, PostgreSQL and MinIO; the
## concurrent sync engine and the operators run under the race detector
RACE_PKGS := ./sync/... ./operators/...
test: tools build
	go test $(GO_TEST_FLAGS) -race $(RACE_PKGS)
	go test $(GO_TEST_FLAGS) $$(go list ./... | grep -v -E '^homeostat.dev/homeostat/(sync|operators)(/|$$)')

## bench: the benchmarks behind BENCHMARKS.md
bench: tools build
	go test -run '^$$' -bench . -benchmem -timeout 60m ./...

## demo: a local control plane and a stand-in node (internal/kubelet, MinIO), examples/ as a git repo, the controller, a real Postgres and a backup, a sync, a commit, the next sync
demo: tools build
	go run ./hack/demo

## fuzz: the renderer's fuzz target, for a minute
fuzz:
	go test -run '^$$' -fuzz FuzzRender -fuzztime 60s ./render/

clean:
	rm -rf bin/
