package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/gobackend"
	"github.com/vitbert/vitbert/model"
)

// startRun starts a training command once its flags are read: the start
// hook, the backend, and a context that SIGINT or SIGTERM cancels (the
// training loop then saves a checkpoint and stops); stop releases the signals.
func startRun() (ctx context.Context, stop context.CancelFunc, backend compute.Backend, err error) {
	if err := startHook(); err != nil {
		return nil, nil, nil, err
	}
	if backend, err = newBackend(); err != nil {
		return nil, nil, nil, err
	}
	ctx, stop = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return ctx, stop, backend, nil
}

// newBackend opens the compute backend: GOMLX_BACKEND if set (e.g.
// "xla:/path/to/pjrt_plugin.so"), else the pure-Go one. The pure-Go backend
// gets as many graph executors as GOMAXPROCS unless the configuration names
// num_executors itself (see backendConfig).
func newBackend() (compute.Backend, error) {
	env, set := os.LookupEnv(compute.ConfigEnvVar)
	config, ok := backendConfig(env, set, compute.List(), runtime.GOMAXPROCS(0))
	var b compute.Backend
	var err error
	func() {
		// compute panics on a backend that is not compiled in.
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r)
				if strings.HasPrefix(config, "xla") {
					err = fmt.Errorf("%w (this binary has the pure-Go backend only: build with -tags xla, see docs/gpu.md)", err)
				}
			}
		}()
		if ok {
			b, err = compute.NewWithConfig(config)
		} else {
			b, err = compute.New()
		}
	}()
	if err != nil {
		return nil, fmt.Errorf("opening the compute backend (GOMLX_BACKEND): %w", err)
	}
	return b, nil
}

// backendConfig returns the configuration to open the backend with, and false
// when compute.New's own choice should be used unchanged (GOMLX_BACKEND unset
// and an XLA backend compiled in, which is then the default).
//
// The pure-Go backend runs independent graph nodes on up to
// model.MaxGoExecutors executor goroutines, each holding one of its
// 2·GOMAXPROCS worker slots for the whole step, and a matrix product only
// fans out over the slots left free: on 2 cores 3 idle executors leave a
// product one worker. One executor per core (num_executors=GOMAXPROCS, at
// most model.MaxGoExecutors) keeps both kinds of parallelism; on 2 cores it
// makes a small-preset training step about a third faster by the clock. An
// explicit num_executors or ops_sequential is kept as given.
func backendConfig(env string, envSet bool, registered []string, procs int) (string, bool) {
	if !envSet {
		if slices.Contains(registered, "xla") {
			return "", false
		}
		env = gobackend.BackendName
	}
	name, opts, _ := strings.Cut(env, ":")
	if name != gobackend.BackendName {
		return env, true
	}
	var parts []string
	for _, p := range strings.Split(opts, ",") {
		key, _, _ := strings.Cut(p, "=")
		switch key {
		case "":
			continue
		case "num_executors", "ops_sequential":
			return env, true
		}
		parts = append(parts, p)
	}
	parts = append(parts, "num_executors="+strconv.Itoa(min(max(procs, 1), model.MaxGoExecutors)))
	return name + ":" + strings.Join(parts, ","), true
}
