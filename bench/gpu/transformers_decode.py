#!/usr/bin/env python3
"""Reference GPU decode benchmark: transformers' generate() on a generated model, bf16.

    python3 bench/gpu/transformers_decode.py --models ROOT --shape llama-3.2-1b [--device cuda|cpu]
        [--adapters none,lora] [--prompt 512] [--new-tokens 128] [--warmup 2] [--repeats 5]
        [--rank 16] [--ceilings ceilings.json]

The model (ROOT/<shape>) is loaded once in bf16 with SDPA attention. Each row runs
generate(greedy, max_new_tokens = min_new_tokens = --new-tokens, so it cannot stop at an EOS)
on a seeded random prompt of --prompt ids, with transformers' defaults otherwise (dynamic KV
cache, no compilation): what a user of transformers gets. "lora" wraps the model in a peft
adapter (r 16, alpha 32, all-linear, unmerged, weights in bf16 like the base, random A and B so
that it changes the output) and unloads it afterwards.
Timing: a streamer receives each new token once generate() has copied it to the host (that
copy waits for the GPU), so its clock marks when each token really exists. TTFT = first token
− the call (prefill of the prompt and one sampling); decode tokens/s = (n − 1) / (last token −
first token), the prefill excluded. Medians over --repeats calls after --warmup untimed ones.
Bandwidth bound: shapes.decode_bytes_per_token (weights, adapter, and the KV cache at the mean
context of the decode steps) over the copy bandwidth of --ceilings; "fraction_of_bound" is the
measured decode rate over it.
Prints one JSON line per row (README.md: the format).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ceilings as measure  # noqa: E402  (sets the offline environment first)
import peft  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402
from transformers.generation.streamers import BaseStreamer  # noqa: E402

from shapes import ALL_LINEAR, CONFIGS, decode_bytes_per_token  # noqa: E402


class TokenClock(BaseStreamer):
    """Host time at which each generated token arrives; generate() first puts the prompt."""

    def __init__(self) -> None:
        self.puts = 0
        self.times: list[float] = []

    def put(self, value: torch.Tensor) -> None:
        self.puts += 1
        if self.puts > 1:
            self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def generate_once(model: Any, prompt: torch.Tensor, new_tokens: int, device: str) -> tuple[float, float]:
    """(TTFT seconds, decode tokens/s) of one generate() call."""
    clock = TokenClock()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens, num_beams=1,
                             pad_token_id=model.generation_config.eos_token_id, streamer=clock)
    if out.shape[1] - prompt.shape[1] != new_tokens or len(clock.times) != new_tokens:
        raise RuntimeError(f"generate() made {out.shape[1] - prompt.shape[1]} tokens, {len(clock.times)} streamed")
    return clock.times[0] - start, (new_tokens - 1) / (clock.times[-1] - clock.times[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, required=True, help="make_models.py's ROOT")
    parser.add_argument("--shape", required=True, choices=sorted(CONFIGS))
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--adapters", default="none,lora")
    parser.add_argument("--prompt", type=int, default=512, help="prompt tokens")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--ceilings", help="ceilings.py's JSON (for the bandwidth bound)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    adapters = args.adapters.split(",")
    if not set(adapters) <= {"none", "lora"} or args.new_tokens < 2:
        parser.error("--adapters takes none,lora; --new-tokens must be at least 2")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device: use --device cpu")

    config = CONFIGS[args.shape]
    ceilings = measure.load_ceilings(args.ceilings)
    bandwidth = ceilings["copy_bytes_per_s"] if ceilings else None
    model = AutoModelForCausalLM.from_pretrained(args.models / args.shape, dtype=torch.bfloat16,
                                                 attn_implementation="sdpa", device_map=args.device).eval()
    gen = torch.Generator().manual_seed(args.seed)
    prompt = torch.randint(0, config["vocab_size"], (1, args.prompt), generator=gen).to(args.device)
    # The mean context a decode step reads: the first new token attends to the prompt, the last
    # to the prompt and the tokens before it.
    context = args.prompt + (args.new_tokens - 1) / 2

    for adapter in adapters:
        rank = args.rank if adapter == "lora" else 0
        runner: Any = model
        if adapter == "lora":
            torch.manual_seed(args.seed)
            lora = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=ALL_LINEAR, lora_dropout=0.0, bias="none",
                              init_lora_weights=False, task_type="CAUSAL_LM")
            runner = get_peft_model(model, lora, autocast_adapter_dtype=False).eval()
        measure.reset_peak(args.device)
        for _ in range(args.warmup):
            generate_once(runner, prompt, args.new_tokens, args.device)
        runs = [generate_once(runner, prompt, args.new_tokens, args.device) for _ in range(args.repeats)]
        tokens_per_s = statistics.median(r[1] for r in runs)
        bytes_per_token = decode_bytes_per_token(config, context, rank)
        bound = bandwidth / bytes_per_token if bandwidth else None
        row = {"bench": "decode", "tool": "transformers", "model": args.shape, "adapter": adapter,
               "rank": rank or None, "dtype": "bf16", "attn": "sdpa", "prompt": args.prompt,
               "new_tokens": args.new_tokens, "decode_tokens_per_s": round(tokens_per_s, 2),
               "ttft_ms": round(1000 * statistics.median(r[0] for r in runs), 2),
               "bytes_per_token": round(bytes_per_token), "copy_bytes_per_s": bandwidth,
               "bound_tokens_per_s": round(bound, 1) if bound else None,
               "fraction_of_bound": round(tokens_per_s / bound, 4) if bound else None,
               **measure.peak_memory(args.device), "warmup": args.warmup, "repeats": args.repeats,
               **measure.environment(args.device), "transformers": transformers.__version__,
               "peft": peft.__version__ if adapter == "lora" else None,
               "decode_tokens_per_s_runs": [round(r[1], 2) for r in runs],
               "ttft_ms_runs": [round(1000 * r[0], 2) for r in runs]}
        print(json.dumps(row), flush=True)
        if adapter == "lora":
            model = runner.unload()
            del runner
            gc.collect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
