package fetchtool

import (
	"strings"
	"testing"
)

// Item 12 of issue 12: a failed fetch says what was run, how it ended and
// what the tool said, even when it said it on standard output or not at all.
func TestRunErrorsShowTheCause(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   []string
	}{
		{"echo registry unreachable: ENOTFOUND; exit 1", []string{"`sh -c", "exit status 1", "registry unreachable: ENOTFOUND"}},
		{"echo E: no network >&2; exit 100", []string{"exit status 100", "E: no network"}},
		{"exit 1", []string{"exit status 1", "printed nothing (no network"}},
	} {
		_, err := Run(t.TempDir(), nil, "sh", "-c", tc.script)
		if err == nil {
			t.Fatalf("%q: no error", tc.script)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q lacks %q", tc.script, err, w)
			}
		}
	}
	out, err := Run(t.TempDir(), []string{"X=42"}, "sh", "-c", "echo $X")
	if err != nil || strings.TrimSpace(string(out)) != "42" {
		t.Errorf("Run = %q, %v", out, err)
	}
}
