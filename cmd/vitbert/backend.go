package main

import (
	"fmt"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
)

// newBackend opens the compute backend: GOMLX_BACKEND if set (e.g.
// "xla:/path/to/pjrt_plugin.so"), else the pure-Go one.
func newBackend() (compute.Backend, error) {
	b, err := compute.New()
	if err != nil {
		return nil, fmt.Errorf("opening the compute backend (GOMLX_BACKEND): %w", err)
	}
	return b, nil
}
