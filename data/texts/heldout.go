package texts

import (
	"fmt"
	"math"
)

// HeldOut splits a corpus by document into training and held-out documents,
// for held-out MLM metrics: a document is held out when the first 8 bytes of
// SHA-256("heldout:" + Source) fall in the lowest frac of the uint64 range.
// The split depends on each document's name alone, so it is the same on every
// run and machine, does not move when documents are added or reordered, and
// never puts one document on both sides. Order is kept within each side.
// It fails when frac is not in (0, 1) or either side would be empty.
func HeldOut(docs []Document, frac float64) (train, held []Document, err error) {
	if !(frac > 0 && frac < 1) {
		return nil, nil, fmt.Errorf("held-out split: fraction %g is not in (0, 1)", frac)
	}
	cut := uint64(frac * math.MaxUint64)
	for _, d := range docs {
		if idHash("heldout:"+d.Source) < cut {
			held = append(held, d)
		} else {
			train = append(train, d)
		}
	}
	if len(train) == 0 || len(held) == 0 {
		return nil, nil, fmt.Errorf("held-out split: %d documents give %d for training and %d held out at fraction %g; the corpus needs more documents",
			len(docs), len(train), len(held), frac)
	}
	return train, held, nil
}
