package checkpoint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/vitbert/vitbert/atomicfs"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/safetensors"
)

// NewStore builds a GoMLX store holding the model's weights.
func (m *Model) NewStore(backend compute.Backend) (*mlmodel.Store, error) {
	store := mlmodel.NewStore()
	if err := Fill(store, &m.Config, m.Weights); err != nil {
		return nil, fmt.Errorf("%s: %w", m.Source, err)
	}
	if err := store.InitializeVariables(backend, nil); err != nil {
		return nil, err
	}
	return store, nil
}

// Fill declares the model's variables in store and sets those present in
// weights (others keep their initialiser, e.g. a fresh downstream head).
func Fill(store *mlmodel.Store, c *model.Config, weights map[string][]float32) error {
	if err := model.CreateVariables(store, c); err != nil {
		return err
	}
	for _, v := range model.Variables(c) {
		vals, ok := weights[v.Path]
		if !ok {
			continue
		}
		t := tensors.FromFlatDataAndDimensions(append([]float32(nil), vals...), v.Shape...)
		if err := store.GetVariable(v.Path).SetValue(t); err != nil {
			return fmt.Errorf("setting %s: %w", v.Path, err)
		}
	}
	return nil
}

// Weights reads the model's variables out of a store.
func Weights(store *mlmodel.Store, c *model.Config) (map[string][]float32, error) {
	w := map[string][]float32{}
	for _, v := range model.Variables(c) {
		sv := store.GetVariable(v.Path)
		if sv == nil {
			return nil, fmt.Errorf("the store has no variable %s", v.Path)
		}
		t, err := sv.Value()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", v.Path, err)
		}
		vals, err := tensors.CopyFlatData[float32](t)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", v.Path, err)
		}
		w[v.Path] = vals
	}
	return w, nil
}

// SaveDir writes a model directory in vitbert's own format (config.json with
// model_type "vitbert", model.safetensors keyed by variable path). The
// directory is written beside the target and renamed into place, so an
// existing model is never left half-overwritten.
func SaveDir(dir string, c *model.Config, weights map[string][]float32) error {
	var ts []*safetensors.Tensor
	for _, v := range model.Variables(c) {
		vals, ok := weights[v.Path]
		if !ok {
			return fmt.Errorf("saving %s: no weights for %s", dir, v.Path)
		}
		ts = append(ts, safetensors.NewF32(v.Path, v.Shape, vals))
	}
	cfg, err := json.MarshalIndent(ownConfig{ModelType: ModelTypeVitbert, Model: *c}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfs.WriteDir(dir, func(tmp string) error {
		if err := os.WriteFile(filepath.Join(tmp, "config.json"), append(cfg, '\n'), 0o644); err != nil {
			return err
		}
		return safetensors.WriteFile(filepath.Join(tmp, "model.safetensors"), ts, map[string]string{"format": "vitbert"})
	})
}
