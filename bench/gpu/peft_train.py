#!/usr/bin/env python3
"""Reference GPU training benchmark: transformers + peft LoRA/DoRA on a generated model, bf16.

    python3 bench/gpu/peft_train.py --models ROOT --shape llama-3.2-1b [--device cuda|cpu]
        [--methods lora,dora] [--runs 512:on,512:off,2048:on,2048:off] [--batch 1]
        [--warmup 3] [--steps 10] [--rank 16] [--ceilings ceilings.json] [--deadline EPOCH_S]

One process per model: the base (ROOT/<shape>, from make_models.py) is loaded once in bf16 with
SDPA attention, and every row wraps it in a fresh peft adapter and unloads it afterwards, so no
row pays a reload of up to 16 GB. The rows: each SEQ:CHECKPOINTING pair of --runs, in that order
(put the rows that matter most first), times each of --methods. A row:
- adapter: LoraConfig(r 16, alpha 32, q,k,v,o,gate,up,down, dropout 0, use_dora for dora), peft's
  default init (B = 0; it moves at the first warm-up step) and dtype (adapter weights fp32);
- precision: torch.autocast(bfloat16) around the forward, as Trainer(bf16=True) runs it;
- step: model(ids, labels=ids) (transformers' shifted mean cross-entropy over full logits), backward,
  clip_grad_norm_(1.0), torch AdamW(lr 2e-4) step, zero_grad; checkpointing "on" is
  gradient_checkpointing_enable(use_reentrant=False) (which, with peft, makes the embedding
  output require grad);
- data: seeded random ids in [0, vocab) (never zeros), a fresh batch each step, the same in every row;
- timing: --warmup untimed steps, then --steps steps each timed with CUDA events; tokens/s is
  batch·seq over the median step; peak memory is the allocator's peak over the row (weights,
  adapter, optimizer state, activations, logits).
MFU uses shapes.py's design.md formula over the measured GEMM rate of --ceilings (mfu) and over
the datasheet's 989 TFLOP/s (mfu_datasheet). A row that runs out of memory prints "error".
Before loading and before each row, if the wall clock is past --deadline (seconds since the
epoch), rows are printed as skipped ("skipped":"deadline"), so a device call ends in its limit.
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

from shapes import ALL_LINEAR, CONFIGS, mfu, train_flops_per_token  # noqa: E402


def run_row(base: Any, args: argparse.Namespace, method: str, seq: int, checkpointing: bool,
            data: torch.Tensor) -> dict[str, Any]:
    device = args.device
    torch.manual_seed(args.seed)  # the same adapter init in every row
    if checkpointing:
        # transformers (and peft's get_peft_model after it) also make the embedding output require
        # grad, as a user's script gets it.
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    config = LoraConfig(r=args.rank, lora_alpha=2 * args.rank, target_modules=ALL_LINEAR, lora_dropout=0.0,
                        bias="none", use_dora=method == "dora", task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    def step(ids: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    losses: list[torch.Tensor] = []
    batches = iter(data)
    result: dict[str, Any] = {}
    try:
        measure.reset_peak(device)
        step_ms = measure.time_calls(lambda: losses.append(step(next(batches))), device, args.warmup, args.steps)
        result = {"step_ms": step_ms, "first_loss": losses[0].item(), "last_loss": losses[-1].item(),
                  **measure.peak_memory(device)}
    except torch.OutOfMemoryError as error:
        result = {"error": f"out of memory: {str(error).splitlines()[0]}", **measure.peak_memory(device)}
    trainable_count = sum(p.numel() for p in trainable)
    # Give the base back untouched for the next row: adapters out, hooks and checkpointing off.
    del optimizer, trainable, losses, batches
    base = model.unload()
    del model
    base.gradient_checkpointing_disable()
    # Each enable_input_require_grads() call replaces the record of the last one's hook, so
    # disable_input_require_grads() misses some: clear the embedding's forward hooks instead
    # (nothing else puts one there), or a checkpointing-off row would inherit them.
    base.get_input_embeddings()._forward_hooks.clear()
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    if any("lora_" in name for name, _ in base.named_modules()):
        raise RuntimeError("peft left adapter modules in the base model")
    result["trainable_parameters"] = trainable_count
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, required=True, help="make_models.py's ROOT")
    parser.add_argument("--shape", required=True, choices=sorted(CONFIGS))
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--methods", default="lora,dora")
    parser.add_argument("--runs", default="512:on,512:off,2048:on,2048:off",
                        help="SEQ:on|off (gradient checkpointing) pairs, in the order to run")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--ceilings", help="ceilings.py's JSON (for MFU over the measured GEMM rate)")
    parser.add_argument("--deadline", type=float, help="skip rows that would start after this time (epoch s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    methods = args.methods.split(",")
    try:
        runs = [(int(seq), {"on": True, "off": False}[ckpt]) for seq, ckpt in (r.split(":") for r in args.runs.split(","))]
    except (ValueError, KeyError):
        parser.error("--runs takes SEQ:on or SEQ:off pairs, comma-separated")
    if not set(methods) <= {"lora", "dora"}:
        parser.error("--methods takes lora, dora or both")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device: use --device cpu")

    config = CONFIGS[args.shape]
    ceilings = measure.load_ceilings(args.ceilings)
    gemm_rate = ceilings["gemm_flops_per_s"] if ceilings else None
    sheet = measure.datasheet_flops(args.device)
    common = {"bench": "train", "tool": "peft", "model": args.shape, "batch": args.batch, "rank": args.rank,
              "dtype": "bf16", "attn": "sdpa", "warmup": args.warmup, "steps": args.steps,
              **measure.environment(args.device), "transformers": transformers.__version__, "peft": peft.__version__}

    if args.deadline and time.time() > args.deadline:  # say so row by row, without loading up to 16 GB
        for seq, checkpointing in runs:
            for method in methods:
                print(json.dumps({**common, "method": method, "seq": seq, "checkpointing": checkpointing,
                                  "skipped": "deadline"}), flush=True)
        return 0
    load_start = time.perf_counter()
    base = AutoModelForCausalLM.from_pretrained(args.models / args.shape, dtype=torch.bfloat16,
                                                attn_implementation="sdpa", device_map=args.device)
    base.config.use_cache = False
    print(f"peft_train: {args.shape} loaded in {time.perf_counter() - load_start:.1f} s", file=sys.stderr)
    gen = torch.Generator().manual_seed(args.seed)
    vocab = config["vocab_size"]
    data: dict[int, torch.Tensor] = {}  # the same batches for every row of a seq
    for seq, checkpointing in runs:
        if seq not in data:
            data[seq] = torch.randint(0, vocab, (args.warmup + args.steps, args.batch, seq), generator=gen).to(args.device)
        for method in methods:
            row: dict[str, Any] = {**common, "method": method, "seq": seq, "checkpointing": checkpointing}
            if args.deadline and time.time() > args.deadline:
                print(json.dumps({**row, "skipped": "deadline"}), flush=True)
                continue
            start = time.perf_counter()
            result = run_row(base, args, method, seq, checkpointing, data[seq])
            flops = train_flops_per_token(config, seq, args.rank, method)
            if "step_ms" in result:
                step_ms = result.pop("step_ms")
                tokens_per_s = args.batch * seq / (statistics.median(step_ms) / 1000)
                row.update({"tokens_per_s": round(tokens_per_s, 1), "step_ms": round(statistics.median(step_ms), 3),
                            "flops_per_token": flops, "mfu": mfu(tokens_per_s, flops, gemm_rate),
                            "mfu_datasheet": mfu(tokens_per_s, flops, sheet),
                            "gemm_flops_per_s": gemm_rate, "step_ms_runs": [round(t, 3) for t in step_ms]})
            row.update(result)
            row["wall_s"] = round(time.perf_counter() - start, 1)
            for key in ("mfu", "mfu_datasheet"):
                if row.get(key) is not None:
                    row[key] = round(row[key], 4)
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
