package model

import (
	"fmt"
	pathpkg "path"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	mlmodel "github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/initializer"
)

// CreateVariables declares every variable of the model in store, with BERT's
// initialisation: N(0, c.InitStd()) for weights and embeddings, zero biases
// and LayerNorm offsets, unit LayerNorm gains. Values are drawn by
// store.InitializeVariables; variables that already exist keep their values.
func CreateVariables(store *mlmodel.Store, c *Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	for _, v := range Variables(c) {
		init := Initializer(store, c, v.Path)
		shape := shapes.Make(dtypes.Float32, v.Shape...)
		if old := store.GetVariable(v.Path); old != nil && !old.Shape().Equal(shape) {
			return fmt.Errorf("variable %s has shape %s, the model wants %s", v.Path, old.Shape(), shape)
		}
		store.VariableWithShape(v.Path, shape, init)
	}
	return nil
}

// Initializer is the initialisation of the variable at path of a model of
// configuration c: unit LayerNorm gains, zero biases and LayerNorm offsets,
// N(0, c.InitStd()) for the rest.
func Initializer(store *mlmodel.Store, c *Config, path string) mlmodel.VariableInitializer {
	switch pathpkg.Base(path) {
	case "gain":
		return initializer.One
	case "offset", "biases":
		return initializer.Zero
	}
	return initializer.RandomNormalFn(store.RootScope(), c.InitStd())
}

// NewStore returns a store holding a freshly initialised model, drawn from seed.
func NewStore(backend compute.Backend, c *Config, seed int64) (*mlmodel.Store, error) {
	store := mlmodel.NewStore()
	if err := store.SetRNGStateFromSeed(seed); err != nil {
		return nil, err
	}
	if err := CreateVariables(store, c); err != nil {
		return nil, err
	}
	if err := store.InitializeVariables(backend, nil); err != nil {
		return nil, fmt.Errorf("initialising the model: %w", err)
	}
	return store, nil
}
