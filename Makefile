# Every target sets the toolchain and SIMD experiment: GoMLX's pure-Go backend
# is about 13x faster with GOEXPERIMENT=simd on AVX2 machines.
export GOTOOLCHAIN := go1.27.3
export GOEXPERIMENT := simd
export GOFLAGS := -mod=mod

BIN := bin/vitbert

.PHONY: build test demo vet fmt bench clean release

build:
	go build -o $(BIN) ./cmd/vitbert

# The main job on the embedded default data.
demo: build
	./$(BIN) demo

test:
	go vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	go test -timeout 30m ./...

# Release binaries (pure-Go backend, SIMD on amd64) for each platform, with
# SHA256SUMS. VERSION defaults to the git description of the checkout.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
PLATFORMS := linux/amd64 linux/arm64 darwin/arm64
DIST := dist

release:
	rm -rf $(DIST) && mkdir -p $(DIST)
	@for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; out=$(DIST)/vitbert-$(VERSION)-$$os-$$arch; \
		echo "building $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch go build -trimpath \
			-ldflags "-s -w -X main.buildVersion=$(VERSION)" -o $$out ./cmd/vitbert || exit 1; \
	done
	cd $(DIST) && sha256sum vitbert-* > SHA256SUMS && cat SHA256SUMS

clean:
	rm -rf bin $(DIST)
