//go:build xla

package train

// Built with -tags xla (and cgo), the test binary also offers the XLA
// backend, selected with GOMLX_BACKEND (xla:cuda, xla:/path/to/plugin.so):
// TestDataParallelMatchesSingleDevice then runs on it.
import _ "github.com/gomlx/go-xla/compute/xla"
