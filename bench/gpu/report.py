#!/usr/bin/env python3
"""Merge the GPU benchmarks' JSON lines (both tools, any order) into markdown tables.

    python3 bench/gpu/report.py FILE.jsonl [FILE.jsonl …] [--out report.md]

Reads every line that parses as a JSON object with a "bench" key ("ceilings", "model", "train",
"decode"; others are ignored, so logs can be fed in whole) and prints:
- the ceilings (copy GB/s, bf16 GEMM TFLOP/s and its share of the datasheet's 989);
- training: one row per (model, method, seq, checkpointing) with each tool's tokens/s, peak
  memory and MFU, and the ratios Attune / peft. MFU is recomputed here for every row by the one
  formula (shapes.train_flops_per_token) over the one measured GEMM rate, so both tools are
  judged alike. Attune's QLoRA/QDoRA rows are set against peft's bf16 LoRA/DoRA row (marked †):
  bitsandbytes is absent on the device machine, so peft cannot run a 4-bit base there.
  "best peft" is peft's faster checkpointing setting at the same (model, method, seq).
- decode: one row per (model, adapter) with tokens/s, TTFT, the bandwidth bound and the ratios.
Several lines for one row (repeated runs) are summarised by their median (peak: the maximum).
Writes the same markdown to --out when given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Iterable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shapes import CONFIGS, decode_bytes_per_token, train_flops_per_token  # noqa: E402

METHOD_ORDER = ["lora", "dora", "qlora", "qdora"]
BF16_PARTNER = {"lora": "lora", "dora": "dora", "qlora": "lora", "qdora": "dora"}
Row = dict[str, Any]


def read_lines(paths: Iterable[Path]) -> list[Row]:
    rows = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "bench" in row:
                rows.append(row)
    return rows


def median_of(rows: list[Row], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def max_of(rows: list[Row], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return max(values) if values else None


def fmt(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "—" if value is None else f"{value:,.{digits}f}{suffix}"


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or not b else f"{a / b:.2f}×"


def status(rows: list[Row]) -> str | None:
    """Why a cell has no number: every line of it was skipped or failed."""
    if not rows or any(r.get("tokens_per_s") or r.get("decode_tokens_per_s") for r in rows):
        return None
    r = rows[-1]
    return f"skipped ({r['skipped']})" if r.get("skipped") else ("OOM" if "memory" in str(r.get("error")) else "failed")


def order(model: str) -> int:
    names = list(CONFIGS)
    return names.index(model) if model in names else len(names)


def ceilings_section(ceil: Row | None) -> list[str]:
    if not ceil:
        return ["No ceilings line: MFU and the bandwidth bound are left out.", ""]
    sheet = ceil.get("datasheet_bf16_flops_per_s")
    share = f" ({ceil['gemm_flops_per_s'] / sheet:.0%} of the datasheet's {sheet / 1e12:.0f})" if sheet else ""
    return [f"Ceilings on {ceil['device']} ({ceil['device_kind']}, torch {ceil['torch']}): device-to-device copy "
            f"{ceil['copy_gb_s']} GB/s (bytes read + written, {ceil['copy_bytes'] >> 20} MiB), bf16 GEMM "
            f"{ceil['gemm_n']}³ {ceil['gemm_tflops']} TFLOP/s{share}; medians of {ceil['repeats']} after "
            f"{ceil['warmup']} warm-ups.", ""]


def train_section(rows: list[Row], ceil: Row | None) -> list[str]:
    if not rows:
        return []
    gemm = ceil["gemm_flops_per_s"] if ceil else None
    sheet = ceil.get("datasheet_bf16_flops_per_s") if ceil else None
    groups: dict[tuple[str, str, int, bool], dict[str, list[Row]]] = {}
    for r in rows:
        key = (r["model"], r["method"], r["seq"], bool(r["checkpointing"]))
        groups.setdefault(key, {}).setdefault(r["tool"], []).append(r)

    def mfu_cell(model: str, method: str, seq: int, tokens: float | None, rank: int) -> str:
        if tokens is None or model not in CONFIGS:
            return "—"
        flops = train_flops_per_token(CONFIGS[model], seq, rank, method)
        parts = [f"{tokens * flops / gemm:.1%}" if gemm else "—", f"{tokens * flops / sheet:.1%}" if sheet else "—"]
        return " / ".join(parts)

    peft = next((r for r in rows if r["tool"] == "peft"), {})
    lines = [f"Training, batch 1, rank 16, all-linear, bf16, SDPA. peft {peft.get('peft', '?')} + transformers "
             f"{peft.get('transformers', '?')} (torch {peft.get('torch', '?')}) on {peft.get('device', '?')}. "
             "Tokens/s over the median step; peak memory in GB (allocated / reserved); MFU over the measured "
             "GEMM rate / over the datasheet.", "",
             "| model | method | seq | ckpt | peft tokens/s | Attune tokens/s | Attune / peft | Attune / best peft "
             "| peft peak GB | Attune peak GB | peak ratio (reserved) | MFU peft | MFU Attune |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    dagger = False
    keys = sorted(groups, key=lambda k: (order(k[0]), k[2], METHOD_ORDER.index(k[1]) if k[1] in METHOD_ORDER else 9,
                                         not k[3]))
    for model, method, seq, ckpt in keys:
        ours = groups[(model, method, seq, ckpt)].get("attune", [])
        partner = BF16_PARTNER.get(method, method)
        theirs = groups.get((model, partner, seq, ckpt), {}).get("peft", [])
        dagger = dagger or method != partner
        best_peft = max((median_of(groups.get((model, partner, seq, c), {}).get("peft", []), "tokens_per_s") or 0
                         for c in (True, False)), default=0) or None
        a_tok, p_tok = median_of(ours, "tokens_per_s"), median_of(theirs, "tokens_per_s")
        a_peak, a_res = max_of(ours, "peak_bytes"), max_of(ours, "peak_reserved_bytes")
        p_peak, p_res = max_of(theirs, "peak_bytes"), max_of(theirs, "peak_reserved_bytes")
        rank = (ours or theirs or [{}])[0].get("rank", 16)
        mark = " †" if method != partner else ""
        lines.append(
            f"| {model} | {method.upper()}{mark} | {seq} | {'on' if ckpt else 'off'} "
            f"| {status(theirs) or fmt(p_tok, 1)} | {status(ours) or fmt(a_tok, 1)} | {ratio(a_tok, p_tok)} "
            f"| {ratio(a_tok, best_peft) if ours else '—'} "
            f"| {fmt(p_peak and p_peak / 1e9, 2)} / {fmt(p_res and p_res / 1e9, 2)} "
            f"| {fmt(a_peak and a_peak / 1e9, 2)} / {fmt(a_res and a_res / 1e9, 2)} "
            f"| {ratio(a_res or a_peak, p_res or p_peak)} "
            f"| {mfu_cell(model, partner, seq, p_tok, rank)} | {mfu_cell(model, method, seq, a_tok, rank)} |")
    lines.append("")
    notes = ["MFU counts design.md's 4N + 6·N_lora + 6·L·T·d FLOPs per token (no recompute), so a "
             "checkpointing row scores lower for the same kernels."]
    if dagger:
        notes.append("† Attune's 4-bit (NF4) base against peft's bf16 LoRA/DoRA row at the same seq and "
                     "checkpointing: bitsandbytes is absent on the device machine, so peft runs no QLoRA/QDoRA "
                     "there. The speed ratio compares a 4-bit-base step with a bf16-base one; the memory ratio "
                     "shows what the 4-bit base saves.")
    return lines + [" ".join(notes), ""]


def decode_section(rows: list[Row], ceil: Row | None) -> list[str]:
    if not rows:
        return []
    bandwidth = ceil["copy_bytes_per_s"] if ceil else None
    groups: dict[tuple[str, str], dict[str, list[Row]]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["adapter"]), {}).setdefault(r["tool"], []).append(r)
    ref = next((r for r in rows if r["tool"] == "transformers"), {})
    lines = [f"Decode, bf16, greedy, {ref.get('new_tokens', '?')} new tokens after a {ref.get('prompt', '?')}-token "
             f"prompt, batch 1. transformers {ref.get('transformers', '?')} generate() (dynamic cache, no compile; "
             f"LoRA unmerged through peft) on {ref.get('device', '?')}. Bound: weights + KV cache bytes per token "
             "over the measured copy bandwidth.", "",
             "| model | adapter | transformers tokens/s | Attune tokens/s | Attune / transformers | transformers TTFT ms "
             "| Attune TTFT ms | TTFT speed-up | bound tokens/s | % of bound transformers / Attune |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for model, adapter in sorted(groups, key=lambda k: (order(k[0]), k[1] != "none", k[1])):
        ours = groups[(model, adapter)].get("attune", [])
        theirs = groups[(model, adapter)].get("transformers", [])
        a_tok, t_tok = median_of(ours, "decode_tokens_per_s"), median_of(theirs, "decode_tokens_per_s")
        a_ttft, t_ttft = median_of(ours, "ttft_ms"), median_of(theirs, "ttft_ms")
        bound = None
        if bandwidth and model in CONFIGS:
            sample = (theirs or ours)[0]
            context = sample["prompt"] + (sample["new_tokens"] - 1) / 2
            rank = (sample.get("rank") or 0) if adapter != "none" else 0
            bound = bandwidth / decode_bytes_per_token(CONFIGS[model], context, rank)
        share = " / ".join(f"{t / bound:.0%}" if t and bound else "—" for t in (t_tok, a_tok))
        lines.append(f"| {model} | {adapter} | {status(theirs) or fmt(t_tok, 1)} | {status(ours) or fmt(a_tok, 1)} "
                     f"| {ratio(a_tok, t_tok)} | {fmt(t_ttft, 1)} | {fmt(a_ttft, 1)} | {ratio(t_ttft, a_ttft)} "
                     f"| {fmt(bound, 0)} | {share} |")
    return lines + [""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", type=Path, nargs="+", help="JSON-lines files (logs are fine: other lines are skipped)")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args()
    rows = read_lines(args.files)
    ceil = next((r for r in reversed(rows) if r["bench"] == "ceilings"), None)
    text = "\n".join(ceilings_section(ceil)
                     + train_section([r for r in rows if r["bench"] == "train"], ceil)
                     + decode_section([r for r in rows if r["bench"] == "decode"], ceil))
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
