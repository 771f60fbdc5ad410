//go:build xla

package main

// Built with -tags xla (and cgo), the binary also offers the XLA backend:
// GOMLX_BACKEND=xla:cuda or xla:/path/to/pjrt_plugin.so (docs/gpu.md).
import _ "github.com/gomlx/go-xla/compute/xla"
