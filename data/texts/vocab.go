package texts

import (
	"fmt"

	"github.com/vitbert/vitbert/text"
)

// TrainVocab learns a WordPiece vocabulary of size tokens (special tokens
// included) from every sentence of docs with text.WordPieceTrainer.
func TrainVocab(docs []Document, size, minFrequency int) (*text.Tokenizer, error) {
	tr := text.NewWordPieceTrainer()
	for _, d := range docs {
		for _, s := range d.Sentences {
			tr.Feed(s)
		}
	}
	tok, err := tr.Train(text.TrainOptions{VocabSize: size, MinFrequency: minFrequency})
	if err != nil {
		return nil, fmt.Errorf("%d documents: %w", len(docs), err)
	}
	return tok, nil
}

// UnigramEntropy is the unigram entropy in nats of docs tokenised by tok,
// special tokens excluded (text.UnigramEntropy): the loss of the best
// context-free predictor, the line a masked language model must go below.
func UnigramEntropy(docs []Document, tok *text.Tokenizer) (float64, error) {
	var ids []int32
	for _, d := range docs {
		for _, s := range d.Sentences {
			ids = append(ids, tok.TokenIDs(s)...)
		}
	}
	h, err := text.UnigramEntropy(ids, tok.IsSpecial)
	if err != nil {
		return 0, fmt.Errorf("%d documents: %w", len(docs), err)
	}
	return h, nil
}
