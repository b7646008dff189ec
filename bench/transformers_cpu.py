#!/usr/bin/env python3
"""Reference CPU inference benchmark: Hugging Face transformers on a model folder.

    .venv/bin/python bench/transformers_cpu.py --model DIR --threads N [--prompt-tokens 512]
        [--decode-tokens 64] [--repeats 3] [--dtype auto|float32|bfloat16] [--attn sdpa|eager]

Prefill: one forward over a prompt of --prompt-tokens ids (filling a KV cache and computing
only the last position's logits, as generate() does); tokens/s from the median of --repeats
timed runs after --warmup (1) untimed ones.
Decode: model.generate(greedy, KV cache, eos disabled) for --decode-tokens new tokens; each
step is timestamped by a logits processor (called once per step, right after that step's
forward), so ms/token = (last step − first step) / (steps − 1), excluding the prefill. Median
over --repeats runs after --warmup untimed ones.
Prints one JSON line:
  {"impl":"transformers","prefill_tokens_per_s":…,"decode_ms_per_token":…,"threads":N,"torch":…, …}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, GenerationConfig, LogitsProcessor, LogitsProcessorList  # noqa: E402


class StepClock(LogitsProcessor):
    """Records the time at which each decoding step's logits are ready."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, input_ids, scores):
        self.times.append(time.perf_counter())
        return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Hugging Face model folder")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before each measurement")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                        help="auto: the dtype stored in config.json")
    parser.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.decode_tokens < 2:
        parser.error("--decode-tokens must be at least 2")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dtype = "auto" if args.dtype == "auto" else getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype, attn_implementation=args.attn).eval()
    vocab = model.config.vocab_size
    prompt = torch.randint(0, vocab, (1, args.prompt_tokens), generator=torch.Generator().manual_seed(args.seed))
    mask = torch.ones_like(prompt)

    def prefill() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            out = model(prompt, attention_mask=mask, use_cache=True, logits_to_keep=1)
        elapsed = time.perf_counter() - start
        assert out.logits.shape[1] == 1
        return elapsed

    for _ in range(args.warmup):
        prefill()
    prefill_s = [prefill() for _ in range(args.repeats)]

    # eos cleared on the model's own generation config too (generate() fills unset values from it).
    model.generation_config.eos_token_id = None
    gen_cfg = GenerationConfig(do_sample=False, max_new_tokens=args.decode_tokens, min_new_tokens=0, num_beams=1,
                               pad_token_id=0, eos_token_id=None, temperature=None, top_p=None, top_k=None,
                               use_cache=True)

    def decode() -> float:
        clock = StepClock()
        with torch.inference_mode():
            out = model.generate(prompt, attention_mask=mask, generation_config=gen_cfg,
                                 logits_processor=LogitsProcessorList([clock]))
        steps = out.shape[1] - prompt.shape[1]
        assert steps == args.decode_tokens == len(clock.times), (steps, len(clock.times))
        return (clock.times[-1] - clock.times[0]) / (steps - 1)

    for _ in range(args.warmup):
        decode()
    decode_s = [decode() for _ in range(args.repeats)]

    params = sum(p.numel() for p in model.parameters())
    result = {
        "impl": "transformers",
        "prefill_tokens_per_s": round(args.prompt_tokens / statistics.median(prefill_s), 2),
        "decode_ms_per_token": round(1000 * statistics.median(decode_s), 3),
        "threads": args.threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "attn": args.attn,
        "parameters": params,
        "prompt_tokens": args.prompt_tokens,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "decode_tokens": args.decode_tokens,
        "prefill_ms_runs": [round(1000 * s, 1) for s in prefill_s],
        "decode_ms_per_token_runs": [round(1000 * s, 3) for s in decode_s],
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
