package text

import (
	_ "embed"
	"sync"
)

// The bert-base-uncased WordPiece vocabulary (Apache-2.0, sha256 07eced37…a038a3),
// built in so that texts can be tokenised without any file.
//
//go:embed bert-base-uncased-vocab.txt
var bertBaseUncasedVocab []byte

var defaultTok = sync.OnceValues(func() (*Tokenizer, error) {
	return parseVocabTxt("bert-base-uncased vocab.txt (built in)", bertBaseUncasedVocab, nil)
})

// Default returns the built-in bert-base-uncased tokenizer (lower-casing,
// accent stripping), the one BERT's uncased checkpoints were trained with.
func Default() (*Tokenizer, error) { return defaultTok() }
