package texts

import "strings"

// Chunks cuts a document into consecutive pieces of at most words
// whitespace-separated words (the last piece may be shorter), each piece
// its words joined by single spaces. A document of no words gives no piece.
// Tasks that classify long documents (Brown-corpus genres) train and score
// on the pieces, keeping all pieces of a document in one split.
func Chunks(doc string, words int) []string {
	if words <= 0 {
		return nil
	}
	f := strings.Fields(doc)
	var out []string
	for len(f) > 0 {
		n := min(words, len(f))
		out = append(out, strings.Join(f[:n], " "))
		f = f[n:]
	}
	return out
}
