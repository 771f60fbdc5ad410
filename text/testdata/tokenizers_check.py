#!/usr/bin/env python3
"""Checks a vocabulary trained by vitbert against Hugging Face `tokenizers`.

Run it where the Python package `tokenizers` is installed, from the repository
root, with a built binary and a plain-text corpus:

    python3 text/testdata/tokenizers_check.py bin/vitbert CORPUS.txt 8000

1. `vitbert vocab train` learns a SIZE-token vocabulary from the first four
   fifths of the lines of CORPUS.txt into a temporary directory.
2. `tokenizers` loads its tokenizer.json and encodes every remaining (held-out)
   line, and each pair of consecutive held-out lines; the ids and type ids must
   equal what `vitbert vocab encode` prints for the same inputs.
3. `tokenizers`' own WordPieceTrainer learns a vocabulary of the same size from
   the same lines; the script reports how many tokens the two vocabularies share
   (they can differ where merges tie, since tokenizers visits words in hash
   order and vitbert in sorted order).

The exit status is 0 when every encoding of step 2 matches. tokenizers_check.js
is the same check through the library's npm binding, where PyPI is out of reach.
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def vitbert_encode(binary, vocab, lines, pair):
    out = subprocess.run([binary, "vocab", "encode", "--vocab", vocab] + (["--pair"] if pair else []),
                         input="".join(l + "\n" for l in lines), capture_output=True, text=True, check=True)
    return [json.loads(l) for l in out.stdout.splitlines()]


def main():
    binary, corpus, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    lines = [l for l in Path(corpus).read_text(encoding="utf-8").splitlines() if l.strip() and "\t" not in l]
    cut = len(lines) * 4 // 5
    train, held = lines[:cut], lines[cut:]
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.txt"
        train_file.write_text("\n".join(train) + "\n", encoding="utf-8")
        vocab = str(Path(tmp) / "vocab")
        subprocess.run([binary, "vocab", "train", "--corpus", str(train_file), "--size", str(size), "--out", vocab], check=True)

        hf = Tokenizer.from_file(str(Path(vocab) / "tokenizer.json"))
        bad = 0
        singles = vitbert_encode(binary, vocab, held, False)
        pairs = vitbert_encode(binary, vocab, [held[i] + "\t" + held[i + 1] for i in range(len(held) - 1)], True)
        for text, ours in zip(held, singles):
            e = hf.encode(text)
            if e.ids != ours["ids"] or e.type_ids != ours["type_ids"]:
                bad += 1
                if bad <= 5:
                    print("differs:", repr(text), e.tokens, ours["tokens"])
        for i, ours in enumerate(pairs):
            e = hf.encode(held[i], held[i + 1])
            if e.ids != ours["ids"] or e.type_ids != ours["type_ids"]:
                bad += 1
                if bad <= 5:
                    print("pair differs:", repr(held[i]), e.tokens, ours["tokens"])
        n = len(singles) + len(pairs)
        print(f"encodings: {n - bad} of {n} held-out texts and pairs identical in tokenizers and vitbert")

        ref = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        ref.normalizer = normalizers.BertNormalizer(lowercase=True)
        ref.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        ref.train([str(train_file)], trainers.WordPieceTrainer(vocab_size=size, special_tokens=SPECIALS, show_progress=False))
        theirs = set(ref.get_vocab())
        ours = set(Path(vocab, "vocab.txt").read_text(encoding="utf-8").splitlines())
        print(f"vocabularies: vitbert {len(ours)}, tokenizers {len(theirs)}, shared {len(ours & theirs)}")
        print("only in vitbert:", sorted(ours - theirs)[:20])
        print("only in tokenizers:", sorted(theirs - ours)[:20])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
