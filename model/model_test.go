package model

import (
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	mlmodel "github.com/gomlx/gomlx/ml/model"
)

func testConfig() Config {
	c := Tiny()
	c.Hidden, c.MLP, c.Heads = 16, 32, 2
	c.VocabSize, c.MaxTextLength = 50, 12
	c.ImageSize, c.PatchSize = 8, 4
	c.AddHead(PaperHead("mlm", HeadMLM, "text", 50))
	c.AddHead(PaperHead("image_cls", HeadClassify, "image", 10))
	return c
}

func TestVariablesMatchGraph(t *testing.T) {
	for _, tied := range []bool{false, true} {
		for _, nrm := range []string{PreNorm, PostNorm} {
			c := testConfig()
			c.Norm = nrm
			c.EmbeddingLayerNorm = nrm == PostNorm
			c.TaskHeads[0].Tied = tied
			c.TaskHeads[0].HiddenNorm = tied
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			backend := compute.MustNew()
			store, err := NewStore(backend, &c, 1)
			if err != nil {
				t.Fatal(err)
			}
			nBefore := store.NumVariables()
			e := mlmodel.MustNewExec(backend, store, func(scope *mlmodel.Scope, ids, seg, mask, pos, pixels *Node) (*Node, *Node) {
				h := c.EncodeText(scope, ids, seg, mask)
				mh, _ := c.Head("mlm")
				ml := c.HeadLogits(scope, mh, GatherPositions(h, pos))
				ih, _ := c.Head("image_cls")
				il := c.HeadLogits(scope, ih, CLS(c.EncodeImage(scope, pixels)))
				return ml, il
			})
			ids := make([][]int32, 2)
			for i := range ids {
				ids[i] = make([]int32, 12)
			}
			_, err = e.Exec(ids, ids, ids, [][]int32{{1, 2}, {3, 4}}, shapesZero(shapes.Make(dtypes.Float32, 2, 3, 8, 8)))
			if err != nil {
				t.Fatal(err)
			}
			if store.NumVariables() != nBefore {
				t.Errorf("the graph created %d variables beyond Variables()", store.NumVariables()-nBefore)
			}
			got := map[string][]int{}
			for v := range store.IterVariables() {
				if v.Trainable {
					got[v.Path()] = v.Shape().Dimensions
				}
			}
			want := Variables(&c)
			for _, w := range want {
				dims, ok := got[w.Path]
				if !ok {
					t.Errorf("norm=%s tied=%v: Variables lists %s, the graph has no such variable", nrm, tied, w.Path)
					continue
				}
				if !equalInts(dims, w.Shape) {
					t.Errorf("%s: shape %v in graph, %v listed", w.Path, dims, w.Shape)
				}
				delete(got, w.Path)
			}
			for p := range got {
				t.Errorf("norm=%s tied=%v: graph variable %s missing from Variables", nrm, tied, p)
			}
		}
	}
}

func shapesZero(s shapes.Shape) any {
	return tensors.FromShape(s)
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
