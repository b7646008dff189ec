#!/usr/bin/env python3
"""Write random-weight bf16 models with the shapes of real ones, in Hugging Face format.

    python3 bench/gpu/make_models.py ROOT --shape llama-3.2-1b [--shape …] [--device cuda|cpu] [--seed 0]

For each --shape (see shapes.py) writes ROOT/<shape>/: bf16 safetensors (5 GB shards, as the Hub
repositories have them: one file for the 1B and 0.6B, four for the 8B), the real config.json
verbatim (transformers 5 would re-serialize it with rope_parameters and dtype; Attune must read
the Hub's form), generation_config.json with the real BOS/EOS, and the tiny tokenizer of
bench/make_bench_model.py (the benchmarks feed random ids). Weights use transformers' own init
(normal, std 0.02; norms 1) from a fixed seed, done on --device: on a GPU the 8B takes seconds
instead of minutes of CPU init, and the result does not depend on the machine's thread count.
A folder whose config.json already equals the wanted one and has weights is kept ("reused").
Prints one JSON line per model: {"bench":"model","model":…,"parameters":…,"bytes":…,"seconds":…}.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import make_bench_model  # noqa: E402  (sets the offline environment; the folder writer and tiny tokenizer)
import torch  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

from shapes import CONFIGS, TOKENIZERS  # noqa: E402


def make(root: Path, shape: str, device: str, seed: int) -> dict:
    start = time.perf_counter()
    out = root / shape
    want = CONFIGS[shape]
    config_file = out / "config.json"
    if config_file.exists() and json.loads(config_file.read_text()) == want and any(out.glob("model*.safetensors")):
        size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
        return {"bench": "model", "model": shape, "path": str(out), "bytes": size, "reused": True}

    tok, st = make_bench_model.make_golden.build_tokenizer(TOKENIZERS[shape])
    if tok.get_vocab_size() > want["vocab_size"]:
        raise ValueError(f"{shape}: vocab_size below the tiny tokenizer's {tok.get_vocab_size()}")
    config = AutoConfig.for_model(**copy.deepcopy(want))  # it adds rope_theta into rope_scaling in place
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).eval()
    params = sum(p.numel() for p in model.parameters())
    generation = {"bos_token_id": want["bos_token_id"], "eos_token_id": want["eos_token_id"]}
    make_bench_model.save_model_folder(model, out, tok, st, generation, max_shard_size="5GB")
    del model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    config_file.write_text(json.dumps(want, indent=2, sort_keys=True) + "\n")
    # Transformers must read the verbatim config back as the config the weights were made from.
    back = AutoConfig.from_pretrained(out)
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "vocab_size", "tie_word_embeddings"):
        if getattr(back, key) != getattr(config, key):
            raise RuntimeError(f"{shape}: config.json reads back {key}={getattr(back, key)}, not {getattr(config, key)}")
    if back.rope_parameters != config.rope_parameters:
        raise RuntimeError(f"{shape}: rope parameters read back as {back.rope_parameters}")
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    return {"bench": "model", "model": shape, "path": str(out), "parameters": params, "dtype": "bfloat16",
            "bytes": size, "files": sorted(p.name for p in out.glob("model*.safetensors*")), "reused": False,
            "seconds": round(time.perf_counter() - start, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="folder that receives one subfolder per shape")
    parser.add_argument("--shape", action="append", required=True, choices=sorted(CONFIGS))
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device: use --device cpu")
    for shape in args.shape:
        print(json.dumps(make(args.root, shape, args.device, args.seed)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
