package serve

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vitbert/vitbert/infer"
	"github.com/vitbert/vitbert/model"
	"github.com/vitbert/vitbert/text"
)

// job is one input of a request: a text (with MLM positions for fill-mask)
// or an image. The queue fills hidden (its real tokens only, [S, D]) and
// logits (the head's, [K] or [P, V]).
type job struct {
	enc       text.Encoding
	positions []int32
	pixels    []float32

	hidden, logits []float32
	err            error
	done           chan struct{}
}

// errStopped answers inputs that arrive after the queues stopped.
var errStopped = errf(503, "unavailable", "the server is shutting down")

// queue batches the inputs of one model, modality and head. Texts wait in a
// lane per length bucket (images in one lane), so that a batch is padded only
// to its own bucket: a worker per lane takes the first waiting input, waits
// up to MaxWait for up to MaxBatch inputs, pads them to a compiled shape and
// runs them in one forward pass.
type queue struct {
	m        *Model
	modality string
	head     *model.HeadConfig // nil: the encoder alone
	lanes    []chan *job       // by length bucket (text), or one (images)
	depth    atomic.Int64
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	mu       sync.Mutex
	compiled map[[3]int]bool
}

func (m *Model) addQueue(modality string, h *model.HeadConfig) {
	q := &queue{m: m, modality: modality, head: h, stop: make(chan struct{}), compiled: map[[3]int]bool{}}
	n := 1
	if modality == "text" {
		n = len(m.lengths)
	}
	for range n {
		in := make(chan *job, m.Opts.QueueLength)
		q.lanes = append(q.lanes, in)
		q.wg.Add(1)
		go q.loop(in)
	}
	m.queues[queueKey(modality, h)] = q
}

// lane is the channel for j: its length bucket's, for a text.
func (q *queue) lane(j *job) chan *job {
	if q.modality != "text" {
		return q.lanes[0]
	}
	for i, l := range q.m.lengths {
		if j.enc.Len() <= l {
			return q.lanes[i]
		}
	}
	return q.lanes[len(q.lanes)-1]
}

func (q *queue) key() string { return queueKey(q.modality, q.head) }

func (q *queue) headName() string {
	if q.head == nil {
		return ""
	}
	return q.head.Name
}

func (q *queue) mlm() bool { return q.head != nil && q.head.Kind == model.HeadMLM }

// run queues jobs and waits for their results (or for ctx).
func (q *queue) run(ctx context.Context, jobs []*job) error {
	if len(jobs) == 0 {
		return nil
	}
	for _, j := range jobs {
		j.done = make(chan struct{})
		q.depth.Add(1)
		q.m.metrics.queueDepth(q.m.Name, q.key(), 1)
		select {
		case q.lane(j) <- j:
		case <-q.stop:
			q.depth.Add(-1)
			q.m.metrics.queueDepth(q.m.Name, q.key(), -1)
			return errStopped
		case <-ctx.Done():
			q.depth.Add(-1)
			q.m.metrics.queueDepth(q.m.Name, q.key(), -1)
			return ctx.Err()
		}
	}
	for _, j := range jobs {
		select {
		case <-j.done:
			if j.err != nil {
				return j.err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (q *queue) loop(in chan *job) {
	defer q.wg.Done()
	batch := make([]*job, 0, q.m.Opts.MaxBatch)
	for {
		var first *job
		select {
		case first = <-in:
		case <-q.stop:
			q.drain(in)
			return
		}
		batch = append(batch[:0], first)
		if q.m.Opts.MaxWait > 0 && len(batch) < q.m.Opts.MaxBatch {
			timer := time.NewTimer(q.m.Opts.MaxWait)
		wait:
			for len(batch) < q.m.Opts.MaxBatch {
				select {
				case j := <-in:
					batch = append(batch, j)
				case <-timer.C:
					break wait
				}
			}
			timer.Stop()
		}
	more: // whatever is already waiting joins without waiting
		for len(batch) < q.m.Opts.MaxBatch {
			select {
			case j := <-in:
				batch = append(batch, j)
			default:
				break more
			}
		}
		q.depth.Add(-int64(len(batch)))
		q.m.metrics.queueDepth(q.m.Name, q.key(), -len(batch))
		q.runBatch(batch)
	}
}

// drain answers the inputs still waiting in a lane once the queue stops.
func (q *queue) drain(in chan *job) {
	for {
		select {
		case j := <-in:
			q.depth.Add(-1)
			q.m.metrics.queueDepth(q.m.Name, q.key(), -1)
			j.err = errStopped
			close(j.done)
		default:
			return
		}
	}
}

func (q *queue) close() {
	q.stopOnce.Do(func() { close(q.stop) })
	q.wg.Wait()
}

func (q *queue) runBatch(batch []*job) {
	start := time.Now()
	var err error
	if q.modality == "text" {
		err = q.runText(batch)
	} else {
		err = q.runImages(batch)
	}
	q.m.metrics.batch(q.m.Name, q.key(), len(batch), time.Since(start))
	for _, j := range batch {
		if err != nil {
			j.err = err
		}
		close(j.done)
	}
}

// shape returns the compiled shape for n inputs of up to length tokens and
// masks MLM positions, and counts it as a compilation the first time.
func (q *queue) shape(n, length, masks int) (b, l, p int) {
	b = bucket(q.m.batchSizes(), n)
	if q.modality == "text" {
		l = bucket(q.m.lengths, length)
		if q.mlm() {
			p = bucket(q.m.maskSizes(), masks)
		}
	}
	q.mu.Lock()
	if !q.compiled[[3]int{b, l, p}] {
		q.compiled[[3]int{b, l, p}] = true
		q.m.metrics.compiled(q.m.Name, q.key())
	}
	q.mu.Unlock()
	return b, l, p
}

// shapes lists every shape the queue compiles.
func (q *queue) shapes() [][3]int {
	var out [][3]int
	ls, ps := []int{0}, []int{0}
	if q.modality == "text" {
		ls = q.m.lengths
		if q.mlm() {
			ps = q.m.maskSizes()
		}
	}
	for _, b := range q.m.batchSizes() {
		for _, l := range ls {
			for _, p := range ps {
				out = append(out, [3]int{b, l, p})
			}
		}
	}
	return out
}

func (q *queue) runText(batch []*job) error {
	longest, masks := 0, 0
	for _, j := range batch {
		longest = max(longest, j.enc.Len())
		masks = max(masks, len(j.positions))
	}
	B, L, P := q.shape(len(batch), longest, masks)
	if longest > L {
		return fmt.Errorf("a text of %d tokens is longer than the largest length bucket %d", longest, L)
	}
	encs := make([]text.Encoding, B)
	for i := range encs {
		encs[i] = batch[min(i, len(batch)-1)].enc // filler rows repeat the last input
	}
	ids, seg, mask := infer.PadBatch(encs, L, q.m.Tok.PAD())
	var pos [][]int32
	if q.mlm() {
		pos = make([][]int32, B)
		for i := range pos {
			pos[i] = make([]int32, P) // unused slots read position 0
			copy(pos[i], batch[min(i, len(batch)-1)].positions)
		}
	}
	out, err := q.m.P.Text(q.headName(), ids, seg, mask, pos)
	if err != nil {
		return err
	}
	D := q.m.Config.Hidden
	perRow := 0
	if out.Logits != nil {
		perRow = len(out.Logits) / B
	}
	for i, j := range batch {
		j.hidden = slices.Clone(out.Hidden[i*L*D : (i*L+j.enc.Len())*D])
		if out.Logits != nil {
			row := out.Logits[i*perRow : (i+1)*perRow]
			if q.mlm() {
				row = row[:len(j.positions)*q.head.Outputs]
			}
			j.logits = slices.Clone(row)
		}
	}
	return nil
}

func (q *queue) runImages(batch []*job) error {
	c := q.m.Config
	size := c.Channels * c.ImageSize * c.ImageSize
	B, _, _ := q.shape(len(batch), 0, 0)
	px := make([]float32, 0, B*size)
	for i := range B {
		p := batch[min(i, len(batch)-1)].pixels
		if len(p) != size {
			return errors.New("image of the wrong size reached the batcher")
		}
		px = append(px, p...)
	}
	out, err := q.m.P.Image(q.headName(), px, B)
	if err != nil {
		return err
	}
	S := len(out.Hidden) / (B * c.Hidden)
	perRow := 0
	if out.Logits != nil {
		perRow = len(out.Logits) / B
	}
	for i, j := range batch {
		j.hidden = slices.Clone(out.Hidden[i*S*c.Hidden : (i+1)*S*c.Hidden])
		if out.Logits != nil {
			j.logits = slices.Clone(out.Logits[i*perRow : (i+1)*perRow])
		}
	}
	return nil
}

// warmup compiles every shape of the queue by running it once.
func (q *queue) warmup() error {
	for _, s := range q.shapes() {
		b, l, p := s[0], s[1], s[2]
		batch := make([]*job, b)
		for i := range batch {
			j := &job{done: make(chan struct{})}
			if q.modality == "text" {
				ids := make([]int32, l)
				ids[0], ids[l-1] = q.m.Tok.CLS(), q.m.Tok.SEP()
				for k := 1; k < l-1; k++ {
					ids[k] = q.m.Tok.MASK()
				}
				j.enc = text.Encoding{IDs: ids, TypeIDs: make([]int32, l), AttentionMask: ones(l)}
				for k := range max(p, 0) {
					j.positions = append(j.positions, int32(min(k+1, l-1)))
				}
			} else {
				c := q.m.Config
				j.pixels = make([]float32, c.Channels*c.ImageSize*c.ImageSize)
			}
			batch[i] = j
		}
		var err error
		if q.modality == "text" {
			err = q.runText(batch)
		} else {
			err = q.runImages(batch)
		}
		if err != nil {
			return fmt.Errorf("model %s, %s: compiling batch %d length %d: %w", q.m.Name, q.key(), b, l, err)
		}
	}
	return nil
}

func ones(n int) []int32 {
	o := make([]int32, n)
	for i := range o {
		o[i] = 1
	}
	return o
}

// Warmup compiles every shape of every queue of m.
func (m *Model) Warmup() error {
	for _, k := range m.queueKeys() {
		if err := m.queues[k].warmup(); err != nil {
			return err
		}
	}
	return nil
}

func (m *Model) queueKeys() []string {
	return slices.Sorted(maps.Keys(m.queues))
}

// Close stops m's queues; inputs still waiting are answered with 503.
func (m *Model) Close() {
	for _, q := range m.queues {
		q.close()
	}
}
