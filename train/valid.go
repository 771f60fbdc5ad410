package train

import (
	"fmt"
	"math"
	"strconv"
)

// Range is an interval of valid values for a configuration field or a
// flag: [Lo, Hi], each end open when LoOpen/HiOpen, ±Inf for no bound.
// NaN and ±Inf are never valid.
type Range struct {
	Lo, Hi         float64
	LoOpen, HiOpen bool
	// Note says what a special value means, e.g. "0 disables clipping".
	Note string
}

// AtLeast is [lo, ∞); Above is (lo, ∞); Between is [lo, hi].
func AtLeast(lo float64) Range         { return Range{Lo: lo, Hi: math.Inf(1)} }
func Above(lo float64) Range           { return Range{Lo: lo, Hi: math.Inf(1), LoOpen: true} }
func Between(lo, hi float64) Range     { return Range{Lo: lo, Hi: hi} }
func (r Range) With(note string) Range { r.Note = note; return r }

// Contains reports whether v is finite and inside the range.
func (r Range) Contains(v float64) bool {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return false
	}
	if v < r.Lo || r.LoOpen && v == r.Lo || v > r.Hi || r.HiOpen && v == r.Hi {
		return false
	}
	return true
}

func (r Range) String() string {
	num := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	var s string
	switch {
	case math.IsInf(r.Hi, 1) && r.LoOpen:
		s = "> " + num(r.Lo)
	case math.IsInf(r.Hi, 1):
		s = ">= " + num(r.Lo)
	default:
		lb, rb := "[", "]"
		if r.LoOpen {
			lb = "("
		}
		if r.HiOpen {
			rb = ")"
		}
		s = "in " + lb + num(r.Lo) + ", " + num(r.Hi) + rb
	}
	if r.Note != "" {
		s += " (" + r.Note + ")"
	}
	return s
}

// Check returns a *FieldError naming field when v is outside the range.
func (r Range) Check(field string, v float64) error {
	if r.Contains(v) {
		return nil
	}
	return &FieldError{Field: field, Value: strconv.FormatFloat(v, 'g', -1, 64), Want: r.String()}
}

// FieldError is an invalid configuration value, named by the JSON path of
// its field (e.g. "optimizer.clip_norm"), so that a command can say which
// flag or config-file entry to change.
type FieldError struct {
	Field string
	Value string
	Want  string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s must be %s, got %s", e.Field, e.Want, e.Value)
}
