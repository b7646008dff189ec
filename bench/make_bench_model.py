#!/usr/bin/env python3
"""Write a random ~110M-parameter Llama-architecture model in Hugging Face format for benchmarks.

    .venv/bin/python bench/make_bench_model.py OUT_DIR [--dtype float32|bfloat16|float16] [--kv-heads N]

Shape (defaults): hidden 768, 12 layers, 12 heads (MHA; --kv-heads for GQA), intermediate 2048,
vocab 32000, tied embeddings, rope_theta 500000, max_position_embeddings 4096. Weights use
transformers' own init (normal, std 0.02) from a fixed seed. The tokenizer is the tiny Llama-3-style
byte-level BPE of test/golden/make_golden.py (its ids all fall inside the 32000-row vocab; the
rest of the embedding rows are padding). Not committed: generate it on demand (~10 s, 440 MB in fp32).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "test" / "golden"))
import make_golden  # noqa: E402  (the tiny tokenizer)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def save_model_folder(model, out: Path, tok, st: dict, generation: dict, max_shard_size: str = "50GB") -> int:
    """Writes a complete model folder (weights as safetensors, config, the tiny tokenizer, a
    generation config) and returns its size in bytes. Also used by bench/gpu/make_models.py."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("model*.safetensors*"):
        old.unlink()
    model.save_pretrained(out, safe_serialization=True, max_shard_size=max_shard_size)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(
        json.dumps(make_golden.tokenizer_config(tok, st, st["chat_template"]), indent=1, ensure_ascii=False) + "\n"
    )
    (out / "generation_config.json").write_text(json.dumps({**generation, "do_sample": False}, indent=1) + "\n")
    return sum(p.stat().st_size for p in out.iterdir() if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (created; existing model files are replaced)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--kv-heads", type=int, default=None, help="default: same as --heads")
    parser.add_argument("--intermediate", type=int, default=2048)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--untied", action="store_true", help="separate lm_head (default: tied)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    tok, st = make_golden.build_tokenizer({"tokenizer": "llama3"})
    if tok.get_vocab_size() > args.vocab:
        parser.error(f"--vocab must be at least the tokenizer's {tok.get_vocab_size()}")
    bos = tok.token_to_id(st["bos_token"])
    eos = [tok.token_to_id("<|end_of_text|>"), tok.token_to_id("<|eot_id|>")]
    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads or args.heads,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
        tie_word_embeddings=not args.untied,
        bos_token_id=bos,
        eos_token_id=eos,
        dtype=args.dtype,
    )
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(config).to(DTYPES[args.dtype]).eval()
    params = sum(p.numel() for p in model.parameters())

    size = save_model_folder(model, args.out, tok, st, {"bos_token_id": bos, "eos_token_id": eos})
    print(json.dumps({
        "model": str(args.out),
        "parameters": params,
        "dtype": args.dtype,
        "bytes": size,
        "tokenizer_vocab": tok.get_vocab_size(),
        "seconds": round(time.perf_counter() - start, 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
