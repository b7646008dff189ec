#!/usr/bin/env python3
"""Write a deterministic text dataset (JSONL, {"text": …} records) for the training benchmarks.

    .venv/bin/python bench/make_bench_data.py OUT.jsonl [--records 16] [--tokens 256]
        [--model .bench-cache/llama-100m-float32] [--seed 0]

Each record is pseudo-English prose (words drawn from a fixed list by a seeded generator) cut so
that it encodes to --tokens ids with the model's tokenizer the way Attune encodes a text record
(src-main/domain/dataset/encode.ts): tokenizer(text) with its special tokens (the BOS), then the
EOS id appended unless already last. So with --seq-len ≥ --tokens nothing is truncated and every
record is one full example. The counts are checked by tokenizing and printed as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from transformers import AutoTokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

WORDS = """
the a an of to in for on with at by from about into over after under between through during
model adapter training data learning rate gradient step layer weight token batch sequence loss
small large quick quiet bright early late simple careful patient steady gentle sharp clear warm
river mountain garden kitchen library window morning evening winter summer city village market
reads writes builds carries finds keeps opens follows measures teaches learns answers remembers
and but so because while when where which that this those these every some many few each
engineer teacher student farmer painter doctor sailor writer baker musician neighbour friend
""".split()


def encode(tokenizer, text: str) -> list[int]:
    """Attune's rule for a text record: ids with special tokens, then EOS unless already last."""
    ids = list(tokenizer(text)["input_ids"])
    eos = tokenizer.eos_token_id
    if not ids or ids[-1] != eos:
        ids.append(eos)
    return ids


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 16))]
    return " ".join(words).capitalize() + rng.choice([".", ".", ".", "?", "!"])


def record(rng: random.Random, tokenizer, tokens: int) -> tuple[str, int]:
    """Prose that encodes to `tokens` ids (or the nearest count below it that trimming reaches)."""
    text = ""
    while len(encode(tokenizer, text)) < tokens:
        text = (text + " " + sentence(rng)).strip()
    # Overshot by at most a sentence: trim characters until the count fits.
    while len(encode(tokenizer, text)) > tokens:
        text = text[:-1]
    return text, len(encode(tokenizer, text))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="JSONL file to write")
    parser.add_argument("--records", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=256, help="ids per record, BOS and appended EOS included")
    parser.add_argument("--model", type=Path, default=ROOT / ".bench-cache" / "llama-100m-float32",
                        help="model folder whose tokenizer counts the tokens")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.tokens < 3:
        parser.error("--tokens must be at least 3 (BOS, a token, EOS)")

    tokenizer = AutoTokenizer.from_pretrained(str(args.model))
    if tokenizer.eos_token_id is None:
        parser.error(f"{args.model}'s tokenizer has no eos_token")
    rng = random.Random(args.seed)
    counts = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for _ in range(args.records):
            text, count = record(rng, tokenizer, args.tokens)
            counts.append(count)
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    tmp.replace(args.out)
    print(json.dumps({
        "data": str(args.out),
        "records": args.records,
        "tokens_target": args.tokens,
        "tokens_min": min(counts),
        "tokens_max": max(counts),
        "tokens_total": sum(counts),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
