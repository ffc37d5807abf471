# meshd — see README.md. `make help` lists the targets.
GO      ?= go
BIN     ?= bin/meshd
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: help build test lint bench fuzz generate envtest ci clean

help: ## list targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build bin/meshd
	$(GO) build -ldflags "-X github.com/meshd/meshd/internal/cli.Version=$(VERSION)" -o $(BIN) ./cmd/meshd

test: ## run the whole test suite (the README's test command)
	$(GO) test -race ./...

lint: ## gofmt, go vet, go mod tidy check
	@test -z "$$(gofmt -l .)" || (gofmt -l . && echo "gofmt needed" && exit 1)
	$(GO) vet ./...
	$(GO) mod tidy -diff

bench: ## run the Go benchmarks and the SDS and xDS harnesses
	$(GO) test -run '^$$' -bench . -benchmem ./certs/ ./sds/ ./caservice/ ./tracing/ ./cmd/meshd/ ./controlplane/... ./metrics/
	$(GO) run ./bench/sdsbench
	$(GO) run ./bench/xdsbench
	$(GO) run ./bench/agentbench
	$(GO) run ./bench/cabench

fuzz: ## fuzz every parser for a short while
	$(GO) test -run '^$$' -fuzz FuzzParseIdentities -fuzztime 30s ./sds/
	$(GO) test -run '^$$' -fuzz FuzzStreamRequests -fuzztime 30s ./sds/
	$(GO) test -run '^$$' -fuzz FuzzParseState -fuzztime 30s ./certs/
	$(GO) test -run '^$$' -fuzz FuzzParseResource -fuzztime 30s ./internal/appmesh/
	$(GO) test -run '^$$' -fuzz FuzzDecodeSpec -fuzztime 30s ./internal/appmesh/
	$(GO) test -run '^$$' -fuzz FuzzValidate -fuzztime 30s ./internal/appmesh/
	$(GO) test -run '^$$' -fuzz FuzzCheckRegex -fuzztime 30s ./internal/appmesh/
	$(GO) test -run '^$$' -fuzz FuzzFiles -fuzztime 30s ./internal/appmesh/load/
	$(GO) test -run '^$$' -fuzz FuzzFromEnv -fuzztime 30s ./tracing/
	$(GO) test -run '^$$' -fuzz FuzzParseFragment -fuzztime 30s ./tracing/
	$(GO) test -run '^$$' -fuzz FuzzValidateSamplingManifest -fuzztime 30s ./tracing/
	$(GO) test -run '^$$' -fuzz 'FuzzParseStats$$' -fuzztime 30s ./metrics/
	$(GO) test -run '^$$' -fuzz FuzzParseStatsAgainstEncodingJSON -fuzztime 30s ./metrics/
	$(GO) test -run '^$$' -fuzz FuzzParseConfigDump -fuzztime 30s ./metrics/
	$(GO) test -run '^$$' -fuzz FuzzLoadConfig -fuzztime 30s ./internal/agent/
	$(GO) test -run '^$$' -fuzz FuzzParseCSR -fuzztime 30s ./caservice/
	$(GO) test -run '^$$' -fuzz FuzzParsePolicy -fuzztime 30s ./caservice/
	$(GO) test -run '^$$' -fuzz FuzzKubernetesVerify -fuzztime 30s ./caservice/

generate: ## regenerate api/ca/v1 from its .proto (needs protoc; installs the Go plugins)
	GOBIN=$(CURDIR)/bin $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	GOBIN=$(CURDIR)/bin $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.1
	PATH=$(CURDIR)/bin:$$PATH protoc --go_out=. --go_opt=module=github.com/meshd/meshd \
		--go-grpc_out=. --go-grpc_opt=module=github.com/meshd/meshd api/ca/v1/ca.proto

envtest: ## build (once, cached) the kube-apiserver and etcd of deploy/k8s's tests; prints KUBEBUILDER_ASSETS
	@hack/envtest-assets.sh

ci: ## what CI runs
	bash .ci/run

clean:
	rm -rf bin .meshd
