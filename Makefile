# Every target sets the toolchain and SIMD experiment: GoMLX's pure-Go backend
# is about 13x faster with GOEXPERIMENT=simd on AVX2 machines.
export GOTOOLCHAIN := go1.27.3
export GOEXPERIMENT := simd
export GOFLAGS := -mod=mod

BIN := bin/vitbert

.PHONY: build test demo vet fmt bench clean

build:
	go build -o $(BIN) ./cmd/vitbert

# The main job on the embedded default data.
demo: build
	./$(BIN) demo

test:
	go vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	go test -timeout 30m ./...

clean:
	rm -rf bin
