# CPU image of vitbert: the pure-Go backend built with GOEXPERIMENT=simd.
# The build stage runs the whole test suite (make test: vet, gofmt, go test),
# so an image exists only for a tree whose tests pass.
#
#   docker build -t vitbert .
#   docker run --rm vitbert --version
#   docker run --rm -v "$PWD/models:/models" vitbert predict --model /models/bert --text "a [MASK] day"
FROM golang:1.27-bookworm AS build
# The Makefile pins GOTOOLCHAIN=go1.27.3; the go command fetches that
# toolchain if the image's differs.
WORKDIR /src
COPY go.mod go.sum ./
RUN GOTOOLCHAIN=go1.27.3 go mod download
COPY . .
RUN make test && make build

FROM debian:bookworm-slim
COPY --from=build /src/bin/vitbert /usr/local/bin/vitbert
ENTRYPOINT ["vitbert"]
