package images

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
)

// Batch is a fixed-shape batch of model inputs.
type Batch struct {
	// Pixels holds B*C*H*W normalised values, image after image, CHW.
	Pixels []float32
	Labels []int32 // B labels; 0 for padding
	// Weights is 1 for real examples and 0 for the padding that fills the
	// last evaluation batch; metrics and losses should weight by it.
	Weights    []float32
	B, C, H, W int
	// Epoch and Step locate the batch: Loader.Batch(Epoch, Step) rebuilds it.
	Epoch, Step int
}

// Real is the number of real (non-padding) examples in b.
func (b *Batch) Real() int {
	n := 0
	for _, w := range b.Weights {
		if w > 0 {
			n++
		}
	}
	return n
}

// LoaderConfig sets how a Loader cuts a dataset into batches.
type LoaderConfig struct {
	BatchSize int
	// Size and Channels are the model's image side and channel count; zero
	// keeps the dataset's.
	Size, Channels int
	Mean, Std      []float32 // nil: ViTMean, ViTStd
	// Train shuffles every epoch by (Seed, epoch), applies Augment and drops
	// the last partial batch; otherwise the order is the dataset's, there is
	// no augmentation and the last batch is padded (with zero weights).
	Train   bool
	Augment Augment
	Seed    uint64
}

// Loader cuts a dataset into batches. Every batch is a pure function of
// (config, epoch, step), so a run resumed at (epoch, step) sees exactly the
// batches an uninterrupted run would.
type Loader struct {
	ds  *Dataset
	cfg LoaderConfig
	pre Preprocess
	c   int // output channels
	s   int // output side

	mu        sync.Mutex
	permEpoch int
	perm      []int
}

// NewLoader checks cfg against ds and returns a loader.
func NewLoader(ds *Dataset, cfg LoaderConfig) (*Loader, error) {
	if err := ds.Validate(); err != nil {
		return nil, err
	}
	if cfg.BatchSize <= 0 {
		return nil, fmt.Errorf("batch size %d must be positive", cfg.BatchSize)
	}
	if cfg.Train && ds.N < cfg.BatchSize {
		return nil, fmt.Errorf("dataset %s/%s has %d images, fewer than one training batch of %d", ds.Name, ds.Split, ds.N, cfg.BatchSize)
	}
	l := &Loader{ds: ds, cfg: cfg, pre: Preprocess{Size: cfg.Size, Channels: cfg.Channels, Mean: cfg.Mean, Std: cfg.Std}, permEpoch: -1}
	l.s, l.c = cfg.Size, cfg.Channels
	if l.s == 0 {
		if ds.H != ds.W {
			return nil, fmt.Errorf("dataset %s has %dx%d images: give the size", ds.Name, ds.H, ds.W)
		}
		l.s = ds.H
	}
	if l.c == 0 {
		l.c = ds.C
	}
	if l.c != ds.C && !(l.c == 3 && ds.C == 1) && !(l.c == 1 && ds.C == 3) {
		return nil, fmt.Errorf("cannot convert %d channels to %d", ds.C, l.c)
	}
	if _, _, err := channelStat(meanOr(cfg.Mean), stdOr(cfg.Std), l.c-1, l.c); err != nil {
		return nil, err
	}
	return l, nil
}

func meanOr(m []float32) []float32 {
	if m == nil {
		return ViTMean
	}
	return m
}

func stdOr(s []float32) []float32 {
	if s == nil {
		return ViTStd
	}
	return s
}

// Dataset returns the dataset l reads.
func (l *Loader) Dataset() *Dataset { return l.ds }

// Config returns the configuration l was made with.
func (l *Loader) Config() LoaderConfig { return l.cfg }

// StepsPerEpoch is the number of batches in one epoch: N/B rounded down for
// training, up for evaluation.
func (l *Loader) StepsPerEpoch() int {
	if l.cfg.Train {
		return l.ds.N / l.cfg.BatchSize
	}
	return (l.ds.N + l.cfg.BatchSize - 1) / l.cfg.BatchSize
}

// Shape returns the batch shape B, C, H, W.
func (l *Loader) Shape() (b, c, h, w int) { return l.cfg.BatchSize, l.c, l.s, l.s }

// Permutation returns the order of the dataset's images in epoch: a
// shuffle seeded by (Seed, epoch) for training, the identity otherwise.
func (l *Loader) Permutation(epoch int) []int {
	if !l.cfg.Train {
		p := make([]int, l.ds.N)
		for i := range p {
			p[i] = i
		}
		return p
	}
	return rand.New(rand.NewPCG(l.cfg.Seed, uint64(epoch))).Perm(l.ds.N)
}

func (l *Loader) permutation(epoch int) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.permEpoch != epoch {
		l.perm, l.permEpoch = l.Permutation(epoch), epoch
	}
	return l.perm
}

// augKey separates the augmentation stream from the shuffling stream.
const augKey = 0x9e3779b97f4a7c15

// Batch builds batch step of epoch.
func (l *Loader) Batch(epoch, step int) (*Batch, error) {
	if epoch < 0 || step < 0 || step >= l.StepsPerEpoch() {
		return nil, fmt.Errorf("batch (epoch %d, step %d) out of range: %d steps per epoch", epoch, step, l.StepsPerEpoch())
	}
	perm := l.permutation(epoch)
	B, C, S := l.cfg.BatchSize, l.c, l.s
	img := C * S * S
	b := &Batch{Pixels: make([]float32, B*img), Labels: make([]int32, B), Weights: make([]float32, B),
		B: B, C: C, H: S, W: S, Epoch: epoch, Step: step}
	// Examples are independent (each has its own generator), so they are
	// prepared in parallel.
	workers := min(runtime.GOMAXPROCS(0), B)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for wk := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := wk; j < B; j += workers {
				pos := step*B + j
				if pos >= len(perm) {
					continue // padding: zero pixels, label 0, weight 0
				}
				i := perm[pos]
				var rng *rand.Rand
				if l.cfg.Train && l.cfg.Augment.Enabled() {
					rng = rand.New(rand.NewPCG(l.cfg.Seed^augKey, uint64(epoch)<<32|uint64(pos)))
				}
				x, err := l.pre.Image(l.ds, i, l.cfg.Augment, rng)
				if err != nil {
					errs[wk] = fmt.Errorf("image %d: %w", i, err)
					return
				}
				copy(b.Pixels[j*img:(j+1)*img], x)
				b.Labels[j] = l.ds.Labels[i]
				b.Weights[j] = 1
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return b, nil
}
