#!/usr/bin/env node
// Checks a vocabulary trained by vitbert against Hugging Face tokenizers, the
// Rust library, through its Node binding (npm package `tokenizers`, the same
// core as the Python package). Run it from the repository root with a built
// binary and a plain-text corpus, the package installed where Node finds it
// (e.g. NODE_PATH=DIR/node_modules after `npm install --prefix DIR tokenizers`):
//
//     node text/testdata/tokenizers_check.js bin/vitbert CORPUS.txt 8000
//
// 1. `vitbert vocab train` learns a SIZE-token vocabulary from the first four
//    fifths of the lines of CORPUS.txt into a temporary directory.
// 2. tokenizers loads its tokenizer.json and encodes every remaining
//    (held-out) line, and each pair of consecutive held-out lines; the ids and
//    type ids must equal what `vitbert vocab encode` prints for the same inputs.
//
// The exit status is 0 when every encoding of step 2 matches. (The Python
// twin, tokenizers_check.py, also compares with tokenizers' own WordPiece
// trainer, whose size the Node binding does not expose.)
"use strict";
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { Tokenizer } = require("tokenizers");

function vitbertEncode(binary, vocab, lines, pair) {
  const out = execFileSync(binary, ["vocab", "encode", "--vocab", vocab].concat(pair ? ["--pair"] : []), {
    input: lines.map((l) => l + "\n").join(""),
    encoding: "utf-8",
    maxBuffer: 1 << 30,
  });
  return out.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

function same(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

async function main() {
  const [binary, corpus, sizeArg] = process.argv.slice(2);
  if (!binary || !corpus || !sizeArg) {
    console.error("usage: tokenizers_check.js VITBERT CORPUS.txt SIZE");
    process.exit(2);
  }
  const lines = fs.readFileSync(corpus, "utf-8").split("\n").filter((l) => l.trim() !== "" && !l.includes("\t"));
  const cut = Math.floor((lines.length * 4) / 5);
  const train = lines.slice(0, cut);
  const held = lines.slice(cut);
  if (held.length < 20) {
    console.error(`${corpus}: ${lines.length} non-empty lines leave ${held.length} held out; want at least 20 (one text per line)`);
    process.exit(2);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tokenizers-check-"));
  try {
    const trainFile = path.join(tmp, "train.txt");
    fs.writeFileSync(trainFile, train.join("\n") + "\n");
    const vocab = path.join(tmp, "vocab");
    execFileSync(binary, ["vocab", "train", "--corpus", trainFile, "--size", sizeArg, "--out", vocab], { stdio: "inherit" });

    const hf = Tokenizer.fromFile(path.join(vocab, "tokenizer.json"));
    const singles = vitbertEncode(binary, vocab, held, false);
    const pairs = vitbertEncode(binary, vocab, held.slice(0, -1).map((l, i) => l + "\t" + held[i + 1]), true);
    let bad = 0;
    const check = async (label, a, b, ours) => {
      const e = await hf.encode(a, b);
      if (!same(e.getIds(), ours.ids) || !same(e.getTypeIds(), ours.type_ids)) {
        bad++;
        if (bad <= 5) console.log(label, "differs:", JSON.stringify(a), e.getTokens(), ours.tokens);
      }
    };
    for (let i = 0; i < held.length; i++) await check("text", held[i], null, singles[i]);
    for (let i = 0; i < pairs.length; i++) await check("pair", held[i], held[i + 1], pairs[i]);
    const n = singles.length + pairs.length;
    console.log(`encodings: ${n - bad} of ${n} held-out texts and pairs identical in tokenizers and vitbert`);
    process.exitCode = bad ? 1 : 0;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
