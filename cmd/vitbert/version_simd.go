//go:build goexperiment.simd

package main

// simdCompiled: the binary was built with GOEXPERIMENT=simd, so the pure-Go
// backend's vectorised kernels are in.
const simdCompiled = true
