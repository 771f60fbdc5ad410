package train

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Progress shows how far a run of total steps is: a progress bar on a
// terminal, and plain lines (one at the start, then one every
// PlainInterval, and one at the end) on anything else — a log file, a pipe,
// CI — where a bar's carriage returns would pile up into one huge line.
type Progress struct {
	bar *progressbar.ProgressBar
	// plain output
	w        io.Writer
	desc     string
	status   string
	total    int
	step     int
	start    time.Time
	last     time.Time
	interval time.Duration
	printed  int
	units    string // what a sub-task counts ("": steps)
	// transient: a sub-task's progress (NewSubProgress)
	transient bool
}

// PlainInterval is how often plain progress lines are written.
var PlainInterval = 30 * time.Second

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// NewProgress returns a Progress of total steps on w (nil: standard error),
// labelled desc, starting at step start.
func NewProgress(w io.Writer, total, start int, desc string) *Progress {
	return newProgress(w, total, start, desc, "", false)
}

// NewSubProgress returns the Progress of a sub-task of total units (a
// plural: "batches"), such as an evaluation during training: on a
// terminal its bar takes the line of the run's bar and is erased when it
// ends, and in plain output it writes lines only once it has taken
// PlainInterval (then every PlainInterval, and at the end), so that short
// sub-tasks leave the log as it was.
func NewSubProgress(w io.Writer, total int, desc, units string) *Progress {
	return newProgress(w, total, 0, desc, units, true)
}

func newProgress(w io.Writer, total, start int, desc, units string, transient bool) *Progress {
	if w == nil {
		w = os.Stderr
	}
	now := time.Now()
	p := &Progress{w: w, desc: desc, total: total, step: start, start: now, last: now, interval: PlainInterval, printed: -1,
		units: units, transient: transient}
	if IsTerminal(w) {
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(w),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString(cmp.Or(units, "steps")),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200 * time.Millisecond),
			progressbar.OptionSetWidth(20),
			progressbar.OptionSetDescription(desc),
		}
		if transient {
			// Start on a cleared line (the run's bar, if any, is redrawn
			// after) and leave it clear.
			fmt.Fprint(w, "\r\033[K")
			opts = append(opts, progressbar.OptionClearOnFinish())
		}
		p.bar = progressbar.NewOptions(total, opts...)
		_ = p.bar.Set(start)
	}
	return p
}

// Describe sets the status shown next to the count (losses, a metric).
func (p *Progress) Describe(status string) {
	p.status = status
	if p.bar != nil {
		p.bar.Describe(status)
	}
}

// Set moves to step.
func (p *Progress) Set(step int) {
	p.step = step
	if p.bar != nil {
		_ = p.bar.Set(step)
		return
	}
	now := time.Now()
	first := p.printed < 0 && !p.transient
	if first || now.Sub(p.last) >= p.interval || step >= p.total && (!p.transient || p.printed >= 0) {
		p.line(now)
	}
}

func (p *Progress) line(now time.Time) {
	if p.printed == p.step {
		return
	}
	pct := 100 * float64(p.step) / float64(max(p.total, 1))
	msg := fmt.Sprintf("%s: step %d/%d (%.0f%%)", p.desc, p.step, p.total, pct)
	if p.units != "" {
		msg = fmt.Sprintf("%s: %d/%d %s (%.0f%%)", p.desc, p.step, p.total, p.units, pct)
	}
	if p.status != "" {
		msg += ", " + p.status
	}
	if el := now.Sub(p.start); el > 0 {
		msg += fmt.Sprintf(", %s elapsed", el.Round(time.Second))
	}
	fmt.Fprintln(p.w, msg)
	p.last, p.printed = now, p.step
}

// Exit ends the display (the bar's line, or a last plain line; none for a
// sub-task that wrote none).
func (p *Progress) Exit() {
	if p.bar != nil {
		_ = p.bar.Exit()
		return
	}
	if !p.transient || p.printed >= 0 {
		p.line(time.Now())
	}
}
