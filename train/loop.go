package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/vitbert/vitbert/atomicfs"
)

// Stateful is host state that a checkpoint saves and a resume restores: the
// position of a data stream, a random number generator.
type Stateful interface {
	State() (json.RawMessage, error)
	Restore(state json.RawMessage) error
}

// Batches feeds the loop: Next returns the inputs of the next step, in the
// order the LossFn expects. Its State is saved with every checkpoint, so
// that a resumed run sees the same batches as an uninterrupted one.
type Batches interface {
	Stateful
	Next() ([]*tensors.Tensor, error)
}

// LoopConfig configures a training run.
type LoopConfig struct {
	// OutDir receives metrics.jsonl, masks.jsonl and checkpoints/.
	OutDir string
	// TotalSteps to reach (counted from the start of training, resumes included).
	TotalSteps int
	// CheckpointEvery N steps (0: only at the end and on interruption).
	CheckpointEvery int
	// KeepCheckpoints is how many checkpoints to keep (0: 3; < 0: all).
	KeepCheckpoints int
	// LogEvery N steps a metrics line is written (0: every step).
	LogEvery int
	// BatchSize, if set, adds examples per second to the metrics.
	BatchSize int
	// RunConfig is the run configuration, saved in every state.json.
	RunConfig any
	// HostState is saved and restored by name with each checkpoint.
	HostState map[string]Stateful
	// Progress receives the progress bar (nil: standard error); Quiet hides it.
	Progress io.Writer
	Quiet    bool
	// Log receives the loop's notes besides progress (a damaged checkpoint
	// skipped on resume; nil: standard error), shown even when Quiet.
	Log io.Writer
	// Evaluate, if set, is called after every EvalEvery-th step and after
	// the last one; the metrics it returns join that step's metrics line.
	Evaluate  func(step int) (map[string]float64, error)
	EvalEvery int
	// OnStep, if set, is called after every step (after its metrics are
	// written): for probes such as activation maps or mask snapshots. An
	// error stops the run.
	OnStep func(res *StepResult) error
}

// ErrInterrupted is returned by Run when it stopped on a signal or a
// cancelled context, after saving a checkpoint.
var ErrInterrupted = errors.New("training interrupted")

// Loop runs a Trainer over Batches, logging metrics and checkpointing.
type Loop struct {
	trainer *Trainer
	data    Batches
	cfg     LoopConfig

	lastCheckpoint     string
	lastCheckpointStep int
}

// Metrics file names under OutDir.
const (
	MetricsFile    = "metrics.jsonl"
	MasksFile      = "masks.jsonl"
	CheckpointsDir = "checkpoints"
)

// NewLoop returns a Loop. It does not touch the disk.
func NewLoop(trainer *Trainer, data Batches, cfg LoopConfig) (*Loop, error) {
	if trainer == nil || data == nil {
		return nil, errors.New("train.NewLoop: trainer and data are required")
	}
	if cfg.OutDir == "" {
		return nil, errors.New("train.NewLoop: OutDir is required")
	}
	if cfg.TotalSteps <= 0 {
		return nil, fmt.Errorf("train.NewLoop: TotalSteps must be > 0, got %d", cfg.TotalSteps)
	}
	if cfg.KeepCheckpoints == 0 {
		cfg.KeepCheckpoints = 3
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = 1
	}
	return &Loop{trainer: trainer, data: data, cfg: cfg, lastCheckpointStep: -1}, nil
}

// CheckpointRoot is OutDir/checkpoints.
func (l *Loop) CheckpointRoot() string { return filepath.Join(l.cfg.OutDir, CheckpointsDir) }

// state gathers the host state for a checkpoint.
func (l *Loop) state(step int) (*CheckpointState, error) {
	st := &CheckpointState{Step: step, HostState: map[string]json.RawMessage{}}
	var err error
	if st.Data, err = l.data.State(); err != nil {
		return nil, fmt.Errorf("data stream state: %w", err)
	}
	for name, s := range l.cfg.HostState {
		if st.HostState[name], err = s.State(); err != nil {
			return nil, fmt.Errorf("host state %q: %w", name, err)
		}
	}
	if l.cfg.RunConfig != nil {
		if st.Config, err = json.Marshal(l.cfg.RunConfig); err != nil {
			return nil, fmt.Errorf("encoding run config: %w", err)
		}
	}
	if m := l.trainer.Mask(); m != nil {
		mc := m.Config()
		st.Mask = &MaskState{UpdatesDone: mc.UpdatesDoneAt(step), UpdateSteps: mc.UpdateSteps()}
		if len(m.Params()) > 0 {
			if st.Mask.Sparsity, err = m.Sparsity(); err != nil {
				return nil, err
			}
		}
	}
	return st, nil
}

// SaveCheckpoint writes a checkpoint of the current state.
func (l *Loop) SaveCheckpoint() (string, error) {
	step, err := l.trainer.CurrentStep()
	if err != nil {
		return "", err
	}
	st, err := l.state(step)
	if err != nil {
		return "", fmt.Errorf("checkpoint of step %d: %w", step, err)
	}
	keep := l.cfg.KeepCheckpoints
	if keep < 0 {
		keep = 0
	}
	dir, err := WriteCheckpoint(l.CheckpointRoot(), l.trainer.Store(), st, keep)
	if err != nil {
		return "", err
	}
	l.lastCheckpoint, l.lastCheckpointStep = dir, step
	return dir, nil
}

// Resume restores a checkpoint directory: variables (weights, optimiser,
// masks, RNG), data-stream position and host state. Metrics and mask lines
// logged after that step by an interrupted run are dropped when Run starts.
func (l *Loop) Resume(dir string) error {
	st, err := LoadCheckpoint(dir, l.trainer.Store())
	if err != nil {
		return fmt.Errorf("resuming from %s: %w", dir, err)
	}
	step, err := l.trainer.CurrentStep()
	if err != nil {
		return err
	}
	if step != st.Step {
		return fmt.Errorf("resuming from %s: the step variable says %d, state.json says %d", dir, step, st.Step)
	}
	if err := l.data.Restore(st.Data); err != nil {
		return fmt.Errorf("resuming from %s: data stream: %w", dir, err)
	}
	for name, s := range l.cfg.HostState {
		raw, ok := st.HostState[name]
		if !ok {
			return fmt.Errorf("resuming from %s: no host state %q in the checkpoint", dir, name)
		}
		if err := s.Restore(raw); err != nil {
			return fmt.Errorf("resuming from %s: host state %q: %w", dir, name, err)
		}
	}
	if m := l.trainer.Mask(); m != nil {
		m.invalidate()
		if st.Mask != nil && st.Mask.UpdatesDone != m.cfg.UpdatesDoneAt(st.Step) {
			return fmt.Errorf("resuming from %s: the checkpoint made %d mask updates by step %d (mask updates at steps %v), but the configured schedule would have made %d (updates at %v): the gradient-mask schedule (steps, mask ratio, mask step, mask span) must be the run's own; resume with the configuration the run was started with",
				dir, st.Mask.UpdatesDone, st.Step, st.Mask.UpdateSteps, m.cfg.UpdatesDoneAt(st.Step), m.cfg.UpdateSteps())
		}
	}
	l.lastCheckpoint, l.lastCheckpointStep = dir, st.Step
	return nil
}

// ResumeLatest resumes from the newest intact checkpoint under
// OutDir/checkpoints, if any, and says whether it did. A damaged checkpoint
// (unreadable state.json or variables, an empty directory) is never deleted:
// it is renamed damaged-step-NNNNNNN (so that a new checkpoint of its step
// cannot replace it, and pruning ignores it), the loop says so on Log, and
// the previous checkpoint is tried.
func (l *Loop) ResumeLatest() (bool, error) {
	steps, err := ListCheckpoints(l.CheckpointRoot())
	if err != nil {
		return false, err
	}
	var first error
	for i := len(steps) - 1; i >= 0; i-- {
		dir := filepath.Join(l.CheckpointRoot(), CheckpointName(steps[i]))
		err := l.Resume(dir)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, errDamaged) {
			return false, err
		}
		if first == nil {
			first = err
		}
		kept, rerr := keepDamaged(dir)
		if rerr != nil {
			return false, fmt.Errorf("%w (and setting it aside failed: %v)", err, rerr)
		}
		next := "no older checkpoint"
		if i > 0 {
			next = "falling back to " + CheckpointName(steps[i-1])
		}
		fmt.Fprintf(l.logWriter(), "checkpoint %s is damaged (%v); kept as %s; %s\n", CheckpointName(steps[i]), err, kept, next)
	}
	if first != nil {
		// Every checkpoint was damaged: the state of the store is unknown.
		return false, fmt.Errorf("no intact checkpoint in %s: %w", l.CheckpointRoot(), first)
	}
	return false, nil
}

// errDamaged marks a checkpoint that cannot be read.
var errDamaged = errors.New("damaged checkpoint")

type damagedError struct{ err error }

func (e *damagedError) Error() string { return e.err.Error() }
func (e *damagedError) Unwrap() error { return e.err }
func (e *damagedError) Is(target error) bool {
	return target == errDamaged
}

// keepDamaged renames a damaged checkpoint out of the way, never deleting it.
func keepDamaged(dir string) (string, error) {
	base := filepath.Join(filepath.Dir(dir), "damaged-"+filepath.Base(dir))
	name := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(name); errors.Is(err, os.ErrNotExist) {
			break
		}
		name = fmt.Sprintf("%s.%d", base, i)
	}
	return filepath.Base(name), os.Rename(dir, name)
}

// logWriter is where the loop reports what it did besides training.
func (l *Loop) logWriter() io.Writer {
	if l.cfg.Log != nil {
		return l.cfg.Log
	}
	return os.Stderr
}

// truncateJSONLAfter drops the lines of a JSON-lines file whose "step" is
// greater than step.
func truncateJSONLAfter(path string, step int) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var kept bytes.Buffer
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var rec struct {
			Step *int `json:"step"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return fmt.Errorf("reading %s: line %d: %w", path, i+1, err)
		}
		if rec.Step != nil && *rec.Step > step {
			continue
		}
		kept.Write(line)
		kept.WriteByte('\n')
	}
	if kept.Len() == len(data) {
		return nil
	}
	return atomicfs.WriteBytes(path, kept.Bytes())
}

// jsonlWriter appends JSON lines to a file.
type jsonlWriter struct {
	f *os.File
	w *bufio.Writer
}

func openJSONL(path string) (*jsonlWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &jsonlWriter{f: f, w: bufio.NewWriter(f)}, nil
}

func (j *jsonlWriter) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if _, err := j.w.Write(b); err != nil {
		return err
	}
	return j.w.Flush()
}

func (j *jsonlWriter) Close() error {
	err := j.w.Flush()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// metricsLine builds one metrics.jsonl record.
func (l *Loop) metricsLine(res *StepResult, elapsed time.Duration, stepsPerSec float64) (map[string]any, error) {
	rec := map[string]any{
		"step":        res.Step,
		"time":        time.Now().UTC().Format(time.RFC3339Nano),
		"elapsed_s":   elapsed.Seconds(),
		"lr":          res.LearningRate,
		"grad_norm":   res.GradNorm,
		"steps_per_s": stepsPerSec,
	}
	if l.cfg.BatchSize > 0 {
		rec["examples_per_s"] = stepsPerSec * float64(l.cfg.BatchSize)
	}
	if res.HasText {
		rec["loss_text"] = res.LossText
	}
	if res.HasImage {
		rec["loss_image"] = res.LossImage
	}
	if m := l.trainer.Mask(); m != nil {
		s, err := m.Sparsity()
		if err != nil {
			return nil, err
		}
		rec["mask_sparsity"] = s
	}
	for k, v := range res.Extra {
		if _, taken := rec[k]; taken {
			k = "extra_" + k
		}
		rec[k] = v
	}
	return rec, nil
}

// Run trains until TotalSteps. It stops early, without checkpointing, on a
// non-finite loss (the last good checkpoint stays as it was), and with a
// checkpoint on a cancelled context (the command cancels it on SIGINT/SIGTERM).
func (l *Loop) Run(ctx context.Context) (err error) {
	release, err := LockDir(l.cfg.OutDir)
	if err != nil {
		return err
	}
	defer release()
	if err := os.MkdirAll(l.CheckpointRoot(), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", l.CheckpointRoot(), err)
	}
	removeStaleTemporaries(l.CheckpointRoot())
	// Lines an interrupted run logged after the step training starts from
	// (its last checkpoint, or 0) would be logged twice.
	start0, err := l.trainer.CurrentStep()
	if err != nil {
		return err
	}
	for _, name := range []string{MetricsFile, MasksFile, ConflictsFile} {
		if err := truncateJSONLAfter(filepath.Join(l.cfg.OutDir, name), start0); err != nil {
			return err
		}
	}
	metrics, err := openJSONL(filepath.Join(l.cfg.OutDir, MetricsFile))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := metrics.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	var masks *jsonlWriter
	if l.trainer.Mask() != nil {
		if masks, err = openJSONL(filepath.Join(l.cfg.OutDir, MasksFile)); err != nil {
			return err
		}
		defer func() {
			if cerr := masks.Close(); err == nil && cerr != nil {
				err = cerr
			}
		}()
	}
	var conflicts *jsonlWriter
	if l.trainer.Config().DiagnosticsEvery > 0 {
		if conflicts, err = openJSONL(filepath.Join(l.cfg.OutDir, ConflictsFile)); err != nil {
			return err
		}
		defer func() {
			if cerr := conflicts.Close(); err == nil && cerr != nil {
				err = cerr
			}
		}()
	}

	step, err := l.trainer.CurrentStep()
	if err != nil {
		return err
	}
	startStep := step
	var bar *Progress
	if !l.cfg.Quiet {
		bar = NewProgress(l.cfg.Progress, l.cfg.TotalSteps, step, "train")
		defer bar.Exit()
	}

	start := time.Now()
	for step < l.cfg.TotalSteps {
		select {
		case <-ctx.Done():
			if step != l.lastCheckpointStep {
				if _, err := l.SaveCheckpoint(); err != nil {
					return fmt.Errorf("%w at step %d; saving a checkpoint failed: %v", ErrInterrupted, step, err)
				}
			}
			return fmt.Errorf("%w at step %d (checkpoint %s)", ErrInterrupted, step, l.lastCheckpoint)
		default:
		}
		batch, err := l.data.Next()
		if err != nil {
			return fmt.Errorf("reading the batch of step %d: %w", step+1, err)
		}
		res, err := l.trainer.Step(batch...)
		if err != nil {
			var nf *NonFiniteError
			if errors.As(err, &nf) {
				last := l.lastCheckpoint
				if last == "" {
					last = "none"
				}
				return fmt.Errorf("stopping: %w; last good checkpoint: %s", err, last)
			}
			return fmt.Errorf("step %d: %w", step+1, err)
		}
		step = res.Step
		elapsed := time.Since(start)
		stepsPerSec := float64(step-startStep) / elapsed.Seconds()
		var evals map[string]float64
		if l.cfg.Evaluate != nil && l.cfg.EvalEvery > 0 && (step%l.cfg.EvalEvery == 0 || step == l.cfg.TotalSteps) {
			if evals, err = l.cfg.Evaluate(step); err != nil {
				return fmt.Errorf("evaluating after step %d: %w", step, err)
			}
		}
		if step%l.cfg.LogEvery == 0 || step == l.cfg.TotalSteps || res.MaskUpdate != nil || len(evals) > 0 {
			rec, err := l.metricsLine(res, elapsed, stepsPerSec)
			if err != nil {
				return err
			}
			for k, v := range evals {
				rec[k] = v
			}
			if err := metrics.write(rec); err != nil {
				return fmt.Errorf("writing metrics: %w", err)
			}
		}
		if res.MaskUpdate != nil && masks != nil {
			if err := masks.write(res.MaskUpdate); err != nil {
				return fmt.Errorf("writing mask report: %w", err)
			}
		}
		if res.Conflicts != nil && conflicts != nil {
			if err := conflicts.write(res.Conflicts); err != nil {
				return fmt.Errorf("writing gradient-conflict diagnostics: %w", err)
			}
		}
		if bar != nil {
			var desc []string
			if res.HasText {
				desc = append(desc, fmt.Sprintf("txt %.4f", res.LossText))
			}
			if res.HasImage {
				desc = append(desc, fmt.Sprintf("img %.4f", res.LossImage))
			}
			bar.Describe(strings.Join(desc, " "))
			bar.Set(step)
		}
		if l.cfg.OnStep != nil {
			if err := l.cfg.OnStep(res); err != nil {
				return fmt.Errorf("after step %d: %w", step, err)
			}
		}
		if l.cfg.CheckpointEvery > 0 && step%l.cfg.CheckpointEvery == 0 {
			if _, err := l.SaveCheckpoint(); err != nil {
				return err
			}
		}
	}
	if step != l.lastCheckpointStep {
		if _, err := l.SaveCheckpoint(); err != nil {
			return err
		}
	}
	return nil
}
