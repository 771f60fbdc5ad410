package train

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// A sub-task's progress off a terminal: nothing when it ends within
// PlainInterval; once it has taken that long, plain lines counting its
// units, and one at the end.
func TestSubProgressPlainLines(t *testing.T) {
	var quick bytes.Buffer
	p := NewSubProgress(&quick, 3, "evaluate test", "batches")
	for i := 1; i <= 3; i++ {
		p.Set(i)
	}
	p.Exit()
	if quick.Len() != 0 {
		t.Errorf("a quick sub-task wrote %q, want nothing", quick.String())
	}

	defer func(d time.Duration) { PlainInterval = d }(PlainInterval)
	PlainInterval = time.Nanosecond
	var slow bytes.Buffer
	p = NewSubProgress(&slow, 3, "evaluate test", "batches")
	for i := 1; i <= 3; i++ {
		time.Sleep(time.Millisecond)
		p.Set(i)
	}
	p.Exit()
	lines := strings.Split(strings.TrimSpace(slow.String()), "\n")
	if strings.Contains(slow.String(), "\r") || len(lines) != 3 ||
		!strings.HasPrefix(lines[0], "evaluate test: 1/3 batches (33%)") || !strings.HasPrefix(lines[2], "evaluate test: 3/3 batches (100%)") {
		t.Errorf("a slow sub-task wrote %q, want a line per batch", lines)
	}
}
