package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/vitbert/vitbert/internal/testutil"
)

func TestVariablesRoundTripKeepOrderAndTrainable(t *testing.T) {
	store := mlmodel.NewStore()
	a, _ := store.CreateVariable("/encoder/a", tensors.FromValue([]float32{1, 2}))
	b, _ := store.CreateVariable("/gradmask/mask/encoder/a", tensors.FromValue([]float32{1, 0}))
	b.SetTrainable(false)
	c, _ := store.CreateVariable("/heads/c", tensors.FromValue([][]float32{{3}}))
	_ = a
	_ = c
	path := filepath.Join(t.TempDir(), VariablesFile)
	if n, err := SaveVariables(path, store); err != nil || n != 3 {
		t.Fatalf("saved %d, %v", n, err)
	}
	restored := mlmodel.NewStore()
	if err := LoadVariables(path, restored); err != nil {
		t.Fatal(err)
	}
	var order []string
	for v := range restored.IterVariables() {
		order = append(order, v.Path())
		orig := store.GetVariable(v.Path())
		if !v.MustValue().Equal(orig.MustValue()) || v.Trainable != orig.Trainable {
			t.Errorf("%s: restored %v trainable=%v, saved %v trainable=%v", v.Path(), v.MustValue(), v.Trainable, orig.MustValue(), orig.Trainable)
		}
	}
	if strings.Join(order, ",") != "/encoder/a,/gradmask/mask/encoder/a,/heads/c" {
		t.Errorf("order %v", order)
	}
	// A shape mismatch with an existing variable is an error naming the variable.
	bad := mlmodel.NewStore()
	_, _ = bad.CreateVariable("/encoder/a", tensors.FromValue([]float32{1, 2, 3}))
	if err := LoadVariables(path, bad); err == nil || !strings.Contains(err.Error(), "/encoder/a") {
		t.Errorf("got %v, want a shape error naming /encoder/a", err)
	}
}

// A checkpoint write that fails part-way leaves the previous checkpoint
// complete and no new or temporary directory behind.
func TestCheckpointWriteIsAtomic(t *testing.T) {
	root := t.TempDir()
	store := mlmodel.NewStore()
	v, _ := store.CreateVariable("/encoder/a", tensors.FromValue([]float32{1, 2}))
	if _, err := WriteCheckpoint(root, store, &CheckpointState{Step: 2, Data: json.RawMessage(`{"pos":2}`)}, 0); err != nil {
		t.Fatal(err)
	}
	_ = v.SetValue(tensors.FromValue([]float32{5, 6}))
	for _, stage := range []string{"variables", "state"} {
		checkpointFault = func(s string) error {
			if s == stage {
				return errors.New("disk full")
			}
			return nil
		}
		_, err := WriteCheckpoint(root, store, &CheckpointState{Step: 4}, 0)
		checkpointFault = nil
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("stage %s: got %v", stage, err)
		}
		entries, _ := os.ReadDir(root)
		if len(entries) != 1 || entries[0].Name() != "step-0000002" {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Fatalf("stage %s: directory holds %v, want only step-0000002", stage, names)
		}
	}
	restored := mlmodel.NewStore()
	st, err := LoadCheckpoint(filepath.Join(root, "step-0000002"), restored)
	if err != nil {
		t.Fatal(err)
	}
	if st.Step != 2 || compactJSON(t, st.Data) != `{"pos":2}` {
		t.Errorf("state %+v", st)
	}
	if got := tensors.MustCopyFlatData[float32](restored.GetVariable("/encoder/a").MustValue()); !slices.Equal(got, []float32{1, 2}) {
		t.Errorf("restored %v, want [1 2]", got)
	}
	// Rewriting a step replaces it; keep prunes the oldest.
	for _, step := range []int{4, 4, 6, 8} {
		if _, err := WriteCheckpoint(root, store, &CheckpointState{Step: step}, 2); err != nil {
			t.Fatal(err)
		}
	}
	if steps, _ := ListCheckpoints(root); !slices.Equal(steps, []int{6, 8}) {
		t.Errorf("checkpoints %v, want [6 8]", steps)
	}
}

func readMetrics(t *testing.T, path string) map[int]map[string]float64 {
	t.Helper()
	out := map[int]map[string]float64{}
	for _, rec := range testutil.ReadJSONL[map[string]any](t, path) {
		if _, ok := rec["time"].(string); !ok {
			t.Errorf("metrics line without time: %v", rec)
		}
		m := map[string]float64{}
		for k, v := range rec {
			if x, ok := v.(float64); ok {
				m[k] = x
			}
		}
		out[int(m["step"])] = m
	}
	return out
}

func resumeConfig() Config {
	cfg := Config{
		Optimizer: OptimizerConfig{LearningRate: 0.05, WarmupSteps: 2, TotalSteps: 8, Decay: DecayCosine,
			Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, WeightDecay: 0.01, ClipNorm: 0.5},
		Mask: MaskConfig{Enabled: true, FinalSparsity: 0.5, Increment: 0.25, StartStep: 1, EndStep: 7, Ranking: RankPerBlock},
		Seed: 5,
	}
	return cfg
}

// An interrupted run resumed from its checkpoint reaches the same losses,
// weights, masks and dropout draws as an uninterrupted one.
func TestResumeMatchesUninterruptedRun(t *testing.T) {
	o := toyOpts{text: true, image: true, dropout: 0.3}
	newLoop := func(out string, total int, rng *HostRNG) (*Loop, *toyData) {
		tr, err := NewTrainer(testBackend(), mlmodel.NewStore(), toyLossFn(o), resumeConfig())
		if err != nil {
			t.Fatal(err)
		}
		data := &toyData{scaleAt: func(int) float32 { return 1 }}
		loop, err := NewLoop(tr, data, LoopConfig{OutDir: out, TotalSteps: total, CheckpointEvery: 3,
			KeepCheckpoints: -1, Quiet: true, RunConfig: resumeConfig(), HostState: map[string]Stateful{"rng": rng}})
		if err != nil {
			t.Fatal(err)
		}
		return loop, data
	}
	dirA := t.TempDir()
	rngA := NewHostRNG(1, 2)
	loopA, _ := newLoop(dirA, 8, rngA)
	if err := loopA.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if steps, _ := ListCheckpoints(loopA.CheckpointRoot()); !slices.Equal(steps, []int{3, 6, 8}) {
		t.Fatalf("checkpoints %v, want [3 6 8]", steps)
	}
	rngA.Uint64() // host state moves on; the checkpoint must restore it

	// Run B: a fresh process stops at 5 (a crash after the step-3
	// checkpoint), then a third one resumes from step 3.
	dirB := t.TempDir()
	loopB, _ := newLoop(dirB, 5, NewHostRNG(1, 2))
	if err := loopB.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	rngC := NewHostRNG(99, 99)
	loopC, dataC := newLoop(dirB, 8, rngC)
	if err := loopC.Resume(filepath.Join(dirB, CheckpointsDir, "step-0000003")); err != nil {
		t.Fatal(err)
	}
	if dataC.pos != 3 {
		t.Errorf("data position %d after resume, want 3", dataC.pos)
	}
	if want := NewHostRNG(1, 2).Uint64(); rngC.Uint64() != want {
		t.Errorf("host RNG not restored")
	}
	if err := loopC.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	mA := readMetrics(t, filepath.Join(dirA, MetricsFile))
	mB := readMetrics(t, filepath.Join(dirB, MetricsFile))
	if len(mA) != 8 || len(mB) != 8 {
		t.Fatalf("metrics have %d and %d steps, want 8", len(mA), len(mB))
	}
	for step := 1; step <= 8; step++ {
		for _, key := range []string{"loss_text", "loss_image", "lr", "mask_sparsity", "grad_norm"} {
			a, b := mA[step][key], mB[step][key]
			if relDiff(a, b) > 1e-5 {
				t.Errorf("step %d %s: uninterrupted %g, resumed %g", step, key, a, b)
			}
		}
	}
	if mA[8]["mask_sparsity"] != 0.5 {
		t.Errorf("final sparsity %g, want 0.5", mA[8]["mask_sparsity"])
	}
	// Final weights, optimiser state and masks agree too.
	for v := range loopA.trainer.Store().IterVariables() {
		w := loopC.trainer.Store().GetVariable(v.Path())
		if w == nil {
			t.Errorf("%s missing after resume", v.Path())
			continue
		}
		if !v.MustValue().InDelta(w.MustValue(), 1e-5) {
			t.Errorf("%s differs: %v vs %v", v.Path(), v.MustValue(), w.MustValue())
		}
	}
	// Both mask updates (steps 4 and 7) were logged once each, in both runs.
	for _, dir := range []string{dirA, dirB} {
		data, _ := os.ReadFile(filepath.Join(dir, MasksFile))
		if n := strings.Count(string(data), "\n"); n != 2 {
			t.Errorf("%s: %d mask lines, want 2", dir, n)
		}
	}
}

// A non-finite loss stops the run with a message naming the step and the
// loss; the checkpoints written before stay, and nothing is written after.
func TestLoopStopsOnNonFiniteLoss(t *testing.T) {
	tr, err := NewTrainer(testBackend(), mlmodel.NewStore(), toyLossFn(toyOpts{text: true, image: true}), noClipConfig())
	if err != nil {
		t.Fatal(err)
	}
	data := &toyData{scaleAt: func(pos int) float32 {
		if pos == 4 { // the batch of step 5
			return float32(math.NaN())
		}
		return 1
	}}
	dir := t.TempDir()
	loop, err := NewLoop(tr, data, LoopConfig{OutDir: dir, TotalSteps: 10, CheckpointEvery: 2, Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, CheckpointsDir, "step-0000004", VariablesFile))
	err = loop.Run(context.Background())
	var nf *NonFiniteError
	if !errors.As(err, &nf) || nf.Step != 5 || !strings.Contains(err.Error(), "step 5") ||
		!strings.Contains(err.Error(), "loss_text=NaN") || !strings.Contains(err.Error(), "step-0000004") {
		t.Fatalf("got %v, want a non-finite error at step 5 naming loss_text=NaN and the last checkpoint", err)
	}
	_ = before
	if steps, _ := ListCheckpoints(loop.CheckpointRoot()); !slices.Equal(steps, []int{2, 4}) {
		t.Errorf("checkpoints %v, want [2 4]", steps)
	}
	restored := mlmodel.NewStore()
	if _, err := LoadCheckpoint(filepath.Join(dir, CheckpointsDir, "step-0000004"), restored); err != nil {
		t.Fatal(err)
	}
	for v := range restored.IterVariables() {
		if !v.MustValue().Equal(tr.Store().GetVariable(v.Path()).MustValue()) {
			t.Errorf("%s: store moved away from the last good checkpoint", v.Path())
		}
	}
	if m := readMetrics(t, filepath.Join(dir, MetricsFile)); len(m) != 4 {
		t.Errorf("%d metrics lines, want 4", len(m))
	}
}

// Cancelling the context (as SIGINT does) saves a checkpoint and returns
// ErrInterrupted.
func TestLoopInterruptSavesCheckpoint(t *testing.T) {
	tr, err := NewTrainer(testBackend(), mlmodel.NewStore(), toyLossFn(toyOpts{text: true, image: true}), noClipConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	data := &toyData{onNext: func(pos int) {
		if pos == 2 {
			cancel()
		}
	}}
	dir := t.TempDir()
	var progress bytes.Buffer
	loop, err := NewLoop(tr, data, LoopConfig{OutDir: dir, TotalSteps: 10, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	err = loop.Run(ctx)
	if !strings.Contains(progress.String(), "/10") {
		t.Errorf("progress bar output %q lacks the step count", progress.String())
	}
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("got %v, want ErrInterrupted", err)
	}
	steps, _ := ListCheckpoints(loop.CheckpointRoot())
	if !slices.Equal(steps, []int{3}) {
		t.Fatalf("checkpoints %v, want [3]", steps)
	}
	st, err := ReadCheckpointState(filepath.Join(loop.CheckpointRoot(), "step-0000003"))
	if err != nil {
		t.Fatal(err)
	}
	if compactJSON(t, st.Data) != `{"pos":3}` {
		t.Errorf("data state %s, want pos 3", st.Data)
	}
}

func TestHostRNGStateRoundTrip(t *testing.T) {
	a := NewHostRNG(3, 4)
	a.Uint64()
	st, err := a.State()
	if err != nil {
		t.Fatal(err)
	}
	want := []uint64{a.Uint64(), a.Uint64()}
	b := NewHostRNG(0, 0)
	if err := b.Restore(st); err != nil {
		t.Fatal(err)
	}
	if got := []uint64{b.Uint64(), b.Uint64()}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("restored RNG gives %v, want %v", got, want)
	}
}

func compactJSON(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// HostRNG is a resumable random number generator (PCG): host state that a
// checkpoint saves through LoopConfig.HostState.
type HostRNG struct {
	*rand.Rand
	pcg *rand.PCG
}

// NewHostRNG returns a HostRNG seeded with (seed, stream).
func NewHostRNG(seed, stream uint64) *HostRNG {
	pcg := rand.NewPCG(seed, stream)
	return &HostRNG{Rand: rand.New(pcg), pcg: pcg}
}

// State implements Stateful.
func (r *HostRNG) State() (json.RawMessage, error) {
	b, err := r.pcg.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return json.Marshal(b)
}

// Restore implements Stateful.
func (r *HostRNG) Restore(state json.RawMessage) error {
	var b []byte
	if err := json.Unmarshal(state, &b); err != nil {
		return fmt.Errorf("host RNG state: %w", err)
	}
	return r.pcg.UnmarshalBinary(b)
}
