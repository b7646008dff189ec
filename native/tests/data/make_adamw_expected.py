#!/usr/bin/env python3
"""Expected values for native/tests/test_adamw.cpp, computed by torch itself.

    .venv/bin/python native/tests/data/make_adamw_expected.py

Writes native/tests/data/adamw_expected.json: a few torch.optim.AdamW runs (CPU, fp32, the
default single-tensor implementation) and torch.nn.utils.clip_grad_norm_ calls on small
deterministic inputs. Every number is an fp32 value written as a Python float (exact). The C++
test replays the same inputs through Attune's AdamW / clip_grad_norm and compares (1e-7 relative;
it also reports how many values are bitwise equal: torch's CPU sqrt is MKL's, off by an ulp now
and then, so the parameters may differ in the last bit where the moments never do).
Deterministic: inputs come from a fixed formula, not a random generator.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent / "adamw_expected.json"


def values(n: int, seed: int, scale: float) -> list[float]:
    """n fp32 values from a fixed formula (sin of an integer hash), times scale."""
    out = []
    for i in range(n):
        h = (i * 2654435761 + seed * 40503) % 1000003
        out.append(float(torch.tensor(math.sin(h) * scale, dtype=torch.float32)))
    return out


def f32list(t: torch.Tensor) -> list[float]:
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def adamw_case(name, sizes, steps, lr, betas, eps, weight_decay, max_norm=None, lr_schedule=None, grad_scales=None):
    params = [torch.nn.Parameter(torch.tensor(values(n, 1 + k, 0.5), dtype=torch.float32)) for k, n in enumerate(sizes)]
    initial = [f32list(p) for p in params]
    opt = torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)
    record = []
    for s in range(steps):
        if lr_schedule is not None:
            for group in opt.param_groups:
                group["lr"] = lr_schedule[s]
        grads = []
        for k, (p, n) in enumerate(zip(params, sizes)):
            scale = grad_scales[s % len(grad_scales)] if grad_scales else 1.0
            g = torch.tensor(values(n, 100 * (s + 1) + k, scale), dtype=torch.float32)
            grads.append(f32list(g))
            p.grad = g.clone()
        entry = {"grads": grads, "lr": opt.param_groups[0]["lr"]}
        if max_norm is not None:
            total = torch.nn.utils.clip_grad_norm_(params, max_norm)
            entry["total_norm"] = float(total)
            entry["clipped_grads"] = [f32list(p.grad) for p in params]
        opt.step()
        entry["params"] = [f32list(p) for p in params]
        entry["exp_avg"] = [f32list(opt.state[p]["exp_avg"]) for p in params]
        entry["exp_avg_sq"] = [f32list(opt.state[p]["exp_avg_sq"]) for p in params]
        entry["step"] = int(opt.state[params[0]]["step"].item())
        record.append(entry)
    return {
        "name": name,
        "sizes": sizes,
        "lr": lr,
        "beta1": betas[0],
        "beta2": betas[1],
        "eps": eps,
        "weight_decay": weight_decay,
        "max_norm": max_norm,
        "initial": initial,
        "steps": record,
    }


def clip_case(name, sizes, max_norm, scale):
    grads = [torch.tensor(values(n, 7 + k, scale), dtype=torch.float32) for k, n in enumerate(sizes)]
    params = [torch.nn.Parameter(torch.zeros(n)) for n in sizes]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    norms = [float(torch.linalg.vector_norm(g)) for g in grads]
    total = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return {
        "name": name,
        "max_norm": max_norm,
        "grads": [f32list(g) for g in grads],
        "norms": norms,
        "total_norm": float(total),
        "clipped": [f32list(p.grad) for p in params],
    }


def main() -> int:
    torch.set_num_threads(1)
    adamw = [
        adamw_case("defaults_wd0.01", [37], 5, 1e-3, (0.9, 0.999), 1e-8, 0.01, grad_scales=[1.0, 0.01, 3.0]),
        adamw_case("no_decay_two_params", [8, 21], 4, 2e-4, (0.9, 0.999), 1e-8, 0.0),
        adamw_case("schedule_betas_eps", [50], 6, 1e-2, (0.8, 0.99), 1e-6, 0.1,
                   lr_schedule=[1e-2, 8e-3, 6e-3, 4e-3, 2e-3, 1e-3]),
        adamw_case("beta1_below_half", [13], 3, 5e-3, (0.3, 0.95), 1e-8, 0.0),
        adamw_case("clip_then_step", [16, 9, 33], 4, 1e-3, (0.9, 0.999), 1e-8, 0.0, max_norm=1.0,
                   grad_scales=[2.0, 0.05]),
    ]
    clips = [
        clip_case("clipped", [100, 7, 64, 3], 1.0, 1.0),
        clip_case("not_clipped", [100, 7, 64, 3], 100.0, 1.0),
        clip_case("tails", [1, 2, 3, 4, 5, 11, 12, 13, 1029], 0.5, 0.3),
    ]
    doc = {
        "format_version": 1,
        "script": "native/tests/data/make_adamw_expected.py",
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "adamw": adamw,
        "clip": clips,
    }
    OUT.write_text(json.dumps(doc) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
