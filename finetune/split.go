package finetune

import (
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/vitbert/vitbert/data/images"
)

// ValidationSplit names the validation split that is carved from the
// training split of a task without one of its own: every HeldOutEvery-th
// training example (index ≡ HeldOutEvery-1 mod HeldOutEvery, in the
// reader's order), or every HeldOutEvery-th document for tasks whose
// examples are pieces of documents. The "train" split of such a task is what
// remains, so no example (and no document) is in both.
const ValidationSplit = "validation"

// carveIndices splits n examples into training and validation indices.
// docs, if not nil, names each example's document; documents are numbered in
// order of first appearance and carved whole.
func carveIndices(n int, docs []string) (train, val []int) {
	docIndex := map[string]int{}
	for i := range n {
		k := i
		if docs != nil {
			d, ok := docIndex[docs[i]]
			if !ok {
				d = len(docIndex)
				docIndex[docs[i]] = d
			}
			k = d
		}
		if k%HeldOutEvery == HeldOutEvery-1 {
			val = append(val, i)
		} else {
			train = append(train, i)
		}
	}
	return train, val
}

// carveValidation makes the task serve ValidationSplit out of its training
// split, and "train" as the rest. The training split is read once.
func (t *taskData) carveValidation() {
	d := *t.def
	d.ValSplit = ValidationSplit
	t.def, t.carvedVal = &d, true
	t.splits = append(t.splits, ValidationSplit)
	if open := t.openTexts; open != nil {
		var all *textSplit
		t.openTexts = func(split string) (*textSplit, error) {
			if split != "train" && split != ValidationSplit {
				return open(split)
			}
			if all == nil {
				s, err := open("train")
				if err != nil {
					return nil, err
				}
				all = s
			}
			tr, val := carveIndices(all.Len(), all.Doc)
			if split == "train" {
				return all.subset(tr), nil
			}
			return all.subset(val), nil
		}
	}
	if open := t.openImages; open != nil {
		var all *images.Dataset
		var shape [2]int // the size and channels all was read at
		t.openImages = func(split string, size, channels int) (*images.Dataset, error) {
			if split != "train" && split != ValidationSplit {
				return open(split, size, channels)
			}
			if all == nil || shape != [2]int{size, channels} {
				ds, err := open("train", size, channels)
				if err != nil {
					return nil, err
				}
				all, shape = ds, [2]int{size, channels}
			}
			tr, val := carveIndices(all.N, nil)
			idx := tr
			if split == ValidationSplit {
				idx = val
			}
			ds, err := all.Subset(idx)
			if err != nil {
				return nil, err
			}
			ds.Split = split
			return ds, nil
		}
	}
}

// fewShot draws the training subset of a few-shot run: perClass examples
// of every class, or n examples in all, chosen by seed (each seed draws a
// different subset). labels are the class ids of the training examples.
// It returns the chosen indices in increasing order.
func fewShot(labels []int, classes, n, perClass int, seed int64) ([]int, error) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed5))
	perm := rng.Perm(len(labels))
	var idx []int
	switch {
	case perClass > 0:
		if classes == 0 {
			return nil, fmt.Errorf("per-class sampling needs a classification task")
		}
		taken := make([]int, classes)
		for _, i := range perm {
			if l := labels[i]; taken[l] < perClass {
				taken[l]++
				idx = append(idx, i)
			}
		}
		for c, k := range taken {
			if k < perClass {
				return nil, fmt.Errorf("per-class %d: class %d has only %d training examples", perClass, c, k)
			}
		}
	case n > 0:
		if n > len(labels) {
			return nil, fmt.Errorf("train-examples %d: the training split holds only %d", n, len(labels))
		}
		idx = perm[:n]
	default:
		idx = perm
	}
	sort.Ints(idx)
	return idx, nil
}
