#!/usr/bin/env python3
"""Reference CPU training benchmark: transformers + peft LoRA/DoRA on a model folder, fp32.

    .venv/bin/python bench/peft_cpu_train.py --model DIR --data FILE.jsonl --method lora|dora
        --steps 6 --seq-len 256 --batch-size 1 --threads N [--grad-accum 1] [--rank 16]
        [--alpha 32] [--lr 2e-4] [--max-grad-norm 1.0] [--attn sdpa|eager]

Mirrors `attune train … --targets all-linear --dropout 0 --no-shuffle` with Attune's defaults:
- data: text records ({"text": …}), taken in file order (no shuffle); step k uses records
  k·B·A … (k+1)·B·A − 1, wrapping round the file as further epochs do. Each record is encoded as
  src-main/domain/dataset/encode.ts does: tokenizer(text) with special tokens, EOS appended unless
  already last, cut to --seq-len; every position is a target.
- loss: Σ target cross-entropy (labels shifted by one) / number of targets in the optimizer step.
  Like Attune, each example is its own forward and backward (no padding), gradients summed.
- adapter: peft LoraConfig(r, alpha, target q,k,v,o,gate,up,down, dropout 0, use_dora for dora).
- optimizer: torch AdamW(lr, betas (0.9, 0.999), eps 1e-8, weight_decay 0), gradients clipped
  to --max-grad-norm, cosine schedule without warmup (transformers' get_cosine_schedule_with_warmup).
- gradient checkpointing on (Attune always recomputes each layer in the backward):
  gradient_checkpointing_enable(use_reentrant=False) and enable_input_require_grads().
Step 1 is a warm-up and is not timed; tokens/s is the median over steps 2..N of tokens / step
seconds (forward, backward, clipping and the optimizer step), as Attune's metrics.jsonl times it.
Prints one JSON line:
  {"impl":"peft","method":…,"tokens_per_s":…,"step_s":…,"peak_rss_bytes":…,"threads":N,"torch":…,…}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import peft  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, get_cosine_schedule_with_warmup  # noqa: E402

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def encode_text(tokenizer, text: str, seq_len: int) -> list[int]:
    """Attune's rule for a text record (encode.ts): special tokens, EOS unless last, cut to seq_len."""
    ids = list(tokenizer(text)["input_ids"])
    eos = tokenizer.eos_token_id
    if not ids or ids[-1] != eos:
        ids.append(eos)
    return ids[:seq_len]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Hugging Face model folder")
    parser.add_argument("--data", required=True, help="JSONL of {\"text\": …} records")
    parser.add_argument("--method", choices=["lora", "dora"], required=True)
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps, the first one untimed")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=float, default=32)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--max-grad-norm", type=float, default=1.0)
    parser.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first step is a warm-up)")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    with open(args.data, encoding="utf-8") as f:
        records = [json.loads(line)["text"] for line in f if line.strip()]
    if not records:
        parser.error(f"{args.data} holds no records")
    examples = [torch.tensor([encode_text(tokenizer, text, args.seq_len)]) for text in records]

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation=args.attn)
    model.config.use_cache = False
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    config = LoraConfig(r=args.rank, lora_alpha=args.alpha, target_modules=ALL_LINEAR, lora_dropout=0.0,
                        bias="none", use_dora=args.method == "dora", task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    scheduler = get_cosine_schedule_with_warmup(optimizer, 0, args.steps)

    per_step = args.batch_size * args.grad_accum
    step_s: list[float] = []
    tokens_per_s: list[float] = []
    losses: list[float] = []
    for step in range(args.steps):
        batch = [examples[(step * per_step + k) % len(examples)] for k in range(per_step)]
        targets = sum(ids.shape[1] - 1 for ids in batch)
        tokens = sum(ids.shape[1] for ids in batch)
        start = time.perf_counter()
        loss_sum = 0.0
        for ids in batch:
            logits = model(input_ids=ids).logits
            loss = F.cross_entropy(logits[0, :-1].float(), ids[0, 1:], reduction="sum")
            (loss / targets).backward()
            loss_sum += loss.item()
        if args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable, args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - start
        losses.append(loss_sum / targets)
        step_s.append(seconds)
        tokens_per_s.append(tokens / seconds)

    timed = tokens_per_s[1:]
    result = {
        "impl": "peft",
        "method": args.method,
        "tokens_per_s": round(statistics.median(timed), 2),
        "step_s": round(statistics.median(step_s[1:]), 3),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "threads": args.threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "attn": args.attn,
        "steps": args.steps,
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "grad_accum": args.grad_accum,
        "trainable_parameters": sum(p.numel() for p in trainable),
        "losses": [round(x, 6) for x in losses],
        "step_s_runs": [round(s, 3) for s in step_s],
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
