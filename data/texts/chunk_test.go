package texts

import (
	"slices"
	"testing"
)

func TestChunks(t *testing.T) {
	for _, tc := range []struct {
		doc   string
		words int
		want  []string
	}{
		{"a b c d e", 2, []string{"a b", "c d", "e"}},
		{"a  b\nc\td", 2, []string{"a b", "c d"}},
		{"a b c", 5, []string{"a b c"}},
		{" \n ", 3, nil},
		{"a b", 0, nil},
	} {
		if got := Chunks(tc.doc, tc.words); !slices.Equal(got, tc.want) {
			t.Errorf("Chunks(%q, %d) = %q, want %q", tc.doc, tc.words, got, tc.want)
		}
	}
}
