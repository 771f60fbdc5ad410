package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/vitbert/vitbert/atomicfs"
	"github.com/vitbert/vitbert/safetensors"
)

// A checkpoint is a directory step-NNNNNNN holding
//   - variables.safetensors: every variable of the store (weights, optimiser
//     moments and step, gradient masks and accumulators, the graph's random
//     number generator state), keyed by variable path, in store order;
//   - state.json: CheckpointState (step, data-stream positions, host state,
//     mask schedule, configuration).
//
// WriteCheckpoint builds it in a temporary directory next to the others and
// renames it into place, so a crash never leaves a half-written checkpoint.
const (
	VariablesFile     = "variables.safetensors"
	StateFile         = "state.json"
	CheckpointFormat  = "vitbert-train/1"
	checkpointPrefix  = "step-"
	checkpointTmpGlob = atomicfs.TempPrefix
)

// CheckpointState is the host-side state saved in state.json.
type CheckpointState struct {
	Format string    `json:"format"`
	Step   int       `json:"step"`
	Time   time.Time `json:"time"`
	// Data is the position of the data streams (opaque, from Batches.State).
	Data json.RawMessage `json:"data,omitempty"`
	// HostState holds other resumable host state, such as random number
	// generators, by name (from LoopConfig.HostState).
	HostState map[string]json.RawMessage `json:"host_state,omitempty"`
	// Mask is the gradient-mask schedule state (nil without masking).
	Mask *MaskState `json:"mask,omitempty"`
	// Config is the run configuration, for the record.
	Config json.RawMessage `json:"config,omitempty"`
	// NumVariables saved in variables.safetensors.
	NumVariables int `json:"num_variables"`
}

// MaskState records where the mask schedule stands.
type MaskState struct {
	UpdatesDone int     `json:"updates_done"`
	UpdateSteps []int   `json:"update_steps"`
	Sparsity    float64 `json:"sparsity"`
}

// checkpointFault, when set (tests), is called at each stage of a checkpoint
// write; an error aborts the write there.
var checkpointFault func(stage string) error

func fault(stage string) error {
	if checkpointFault != nil {
		return checkpointFault(stage)
	}
	return nil
}

// CheckpointName returns the directory name of the checkpoint of a step.
func CheckpointName(step int) string { return fmt.Sprintf("%s%07d", checkpointPrefix, step) }

// SaveVariables writes every variable of the store to path as safetensors.
// The metadata records which variables are not trainable.
func SaveVariables(path string, store *mlmodel.Store) (int, error) {
	var entries []*safetensors.Tensor
	var nonTrainable []string
	for v := range store.IterVariables() {
		if !v.HasValue() {
			return 0, fmt.Errorf("saving variables: %s has no value (not initialised)", v.Path())
		}
		t, err := v.Value()
		if err != nil {
			return 0, fmt.Errorf("saving variables: %s: %w", v.Path(), err)
		}
		st, err := safetensors.FromGoMLX(v.Path(), t)
		if err != nil {
			return 0, fmt.Errorf("saving variables: %w", err)
		}
		entries = append(entries, st)
		if !v.Trainable {
			nonTrainable = append(nonTrainable, v.Path())
		}
	}
	nt, err := json.Marshal(nonTrainable)
	if err != nil {
		return 0, err
	}
	if err := safetensors.WriteFile(path, entries, map[string]string{"format": CheckpointFormat, "non_trainable": string(nt)}); err != nil {
		return 0, err
	}
	return len(entries), nil
}

// LoadVariables reads a safetensors file written by SaveVariables into the
// store: existing variables get the saved value (the shapes must match),
// missing ones are created (in file order, which is the saved store order)
// with the saved trainable flag, ready for the graphs that will use them.
func LoadVariables(path string, store *mlmodel.Store) error {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return err
	}
	return setVariables(path, f, store)
}

// setVariables puts a read file's tensors into the store (see LoadVariables).
func setVariables(path string, f *safetensors.File, store *mlmodel.Store) error {
	nonTrainable := map[string]bool{}
	if s, ok := f.Metadata["non_trainable"]; ok {
		var names []string
		if err := json.Unmarshal([]byte(s), &names); err != nil {
			return fmt.Errorf("reading %s: metadata non_trainable: %w", path, err)
		}
		for _, n := range names {
			nonTrainable[n] = true
		}
	}
	for _, st := range f.InFileOrder() {
		t, err := st.GoMLX()
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		v := store.GetVariable(st.Name)
		if v != nil {
			if !v.Shape().Equal(t.Shape()) {
				return fmt.Errorf("reading %s: variable %s has shape %s in the store but %s in the file",
					path, st.Name, v.Shape(), t.Shape())
			}
			if err := v.SetValue(t); err != nil {
				return fmt.Errorf("reading %s: setting %s: %w", path, st.Name, err)
			}
			continue
		}
		v, err = store.CreateVariable(st.Name, t)
		if err != nil {
			return fmt.Errorf("reading %s: creating %s: %w", path, st.Name, err)
		}
		v.SetTrainable(!nonTrainable[st.Name])
	}
	return nil
}

// WriteCheckpoint atomically writes the store and state as root/step-NNNNNNN
// (see atomicfs.WriteDir). A previous checkpoint of the same step is
// replaced. keep > 0 deletes all but the newest keep checkpoints afterwards.
// It returns the checkpoint directory.
func WriteCheckpoint(root string, store *mlmodel.Store, state *CheckpointState, keep int) (string, error) {
	final := filepath.Join(root, CheckpointName(state.Step))
	err := atomicfs.WriteDir(final, func(tmp string) error {
		n, err := SaveVariables(filepath.Join(tmp, VariablesFile), store)
		if err != nil {
			return err
		}
		if err := fault("variables"); err != nil {
			return err
		}
		st := *state
		st.Format = CheckpointFormat
		st.NumVariables = n
		if st.Time.IsZero() {
			st.Time = time.Now().UTC()
		}
		js, err := json.MarshalIndent(&st, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding state: %w", err)
		}
		if err := os.WriteFile(filepath.Join(tmp, StateFile), append(js, '\n'), 0o644); err != nil {
			return err
		}
		return fault("state")
	})
	if err != nil {
		return "", fmt.Errorf("checkpoint of step %d: %w", state.Step, err)
	}
	if keep > 0 {
		if err := pruneCheckpoints(root, keep); err != nil {
			return final, err
		}
	}
	return final, nil
}

// ListCheckpoints returns the steps of the complete checkpoints under root,
// in increasing order. Temporary directories are ignored.
func ListCheckpoints(root string) ([]int, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var steps []int
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, checkpointPrefix) {
			continue
		}
		step, err := strconv.Atoi(strings.TrimPrefix(name, checkpointPrefix))
		if err != nil || step < 0 {
			continue
		}
		steps = append(steps, step)
	}
	sort.Ints(steps)
	return steps, nil
}

// LatestCheckpoint returns the newest checkpoint directory under root, or ""
// when there is none.
func LatestCheckpoint(root string) (string, error) {
	steps, err := ListCheckpoints(root)
	if err != nil || len(steps) == 0 {
		return "", err
	}
	return filepath.Join(root, CheckpointName(steps[len(steps)-1])), nil
}

func pruneCheckpoints(root string, keep int) error {
	steps, err := ListCheckpoints(root)
	if err != nil {
		return err
	}
	for len(steps) > keep {
		if err := os.RemoveAll(filepath.Join(root, CheckpointName(steps[0]))); err != nil {
			return fmt.Errorf("removing old checkpoint: %w", err)
		}
		steps = slices.Delete(steps, 0, 1)
	}
	return nil
}

// removeStaleTemporaries deletes leftovers of interrupted checkpoint writes.
func removeStaleTemporaries(root string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), checkpointTmpGlob) {
			_ = os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
}

// ReadCheckpointState reads dir/state.json.
func ReadCheckpointState(dir string) (*CheckpointState, error) {
	path := filepath.Join(dir, StateFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st CheckpointState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if st.Format != CheckpointFormat {
		return nil, fmt.Errorf("reading %s: format %q, want %q", path, st.Format, CheckpointFormat)
	}
	return &st, nil
}

// LoadCheckpoint restores the store's variables from dir and returns its state.
// A checkpoint whose files cannot be read (missing, truncated, not JSON)
// gives an error that matches errDamaged; one that does not fit the store
// (another model) does not.
func LoadCheckpoint(dir string, store *mlmodel.Store) (*CheckpointState, error) {
	st, err := ReadCheckpointState(dir)
	if err != nil {
		return nil, &damagedError{err}
	}
	path := filepath.Join(dir, VariablesFile)
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, &damagedError{err}
	}
	if err := setVariables(path, f, store); err != nil {
		return nil, err
	}
	return st, nil
}
