//go:build !goexperiment.simd

package main

const simdCompiled = false
