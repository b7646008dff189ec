#!/usr/bin/env python3
"""The device's two ceilings, measured: device-to-device copy bandwidth and dense bf16 GEMM rate.

    python3 bench/gpu/ceilings.py [--device cuda|cpu] [--out FILE.json] [--gemm-n 8192]
        [--copy-mib 2048] [--warmup 3] [--repeats 10]

Copy: dst.copy_(src) of --copy-mib MiB of random bytes (a cudaMemcpyAsync device to device),
counting bytes read plus bytes written. GEMM: C = A·B, A and B n×n bf16 from randn (never
zeros: zeros run faster than real data), 2·n³ FLOPs. Each is timed call by call with CUDA events
after --warmup untimed calls; the rate is the median of --repeats. Both operands are far larger
than the L2 cache, so nothing is served from it. The training MFU and the decode bandwidth bound
of peft_train.py, transformers_decode.py and report.py are taken over these two numbers.
On --device cpu the same code measures the CPU (smaller defaults; the JSON says "device":"cpu").
Prints a summary on stderr and one JSON line on stdout ({"bench":"ceilings",…}); --out writes it too.

This module also holds the timing and environment helpers the other scripts share.
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
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shapes import DATASHEET_BF16_FLOPS  # noqa: E402


def device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else (platform.processor() or platform.machine())


def datasheet_flops(device: str) -> float | None:
    """989 TFLOP/s applies to H100 SXM and H200 only; elsewhere there is no datasheet figure here."""
    name = device_name(device)
    return DATASHEET_BF16_FLOPS if device == "cuda" and ("H100" in name or "H200" in name) else None


def time_calls(fn: Callable[[], Any], device: str, warmup: int, repeats: int) -> list[float]:
    """Milliseconds of each of `repeats` calls after `warmup` untimed ones: CUDA events around each
    call on a GPU (the host clock would only time the launch), the host clock after a sync on CPU."""
    for _ in range(warmup):
        fn()
    if device != "cuda":
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(1000 * (time.perf_counter() - start))
        return times
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
    for start, end in events:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return [start.elapsed_time(end) for start, end in events]


def reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory(device: str) -> dict[str, Any]:
    """The allocator's peak since reset_peak (allocated: tensors live; reserved: held from the
    driver, what the GPU must really have). On CPU only the process's peak RSS exists."""
    if device == "cuda":
        return {"peak_bytes": torch.cuda.max_memory_allocated(), "peak_reserved_bytes": torch.cuda.max_memory_reserved(),
                "peak_kind": "torch.cuda.max_memory_allocated/reserved"}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"peak_bytes": rss, "peak_reserved_bytes": rss, "peak_kind": "process max RSS (CPU; whole process)"}


def environment(device: str) -> dict[str, Any]:
    env: dict[str, Any] = {"device": device_name(device), "device_kind": device, "torch": torch.__version__}
    if device == "cuda":
        env["cuda"] = torch.version.cuda
    else:
        env["threads"] = torch.get_num_threads()
    return env


def load_ceilings(path: str | None) -> dict[str, Any] | None:
    """The last line of ceilings.py's output; None (MFU and bounds left out) if there is none, so
    a failed ceilings step costs those columns, not the whole run."""
    lines = Path(path).read_text().strip().splitlines() if path and Path(path).is_file() else []
    if not lines:
        if path:
            print(f"warning: no ceilings in {path}: MFU and bandwidth bounds left out", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def measure(device: str, gemm_n: int, copy_bytes: int, warmup: int, repeats: int) -> dict[str, Any]:
    gen = torch.Generator(device=device).manual_seed(0)
    src = torch.randint(0, 256, (copy_bytes,), dtype=torch.uint8, device=device, generator=gen)
    dst = torch.empty_like(src)
    copy_ms = time_calls(lambda: dst.copy_(src), device, warmup, repeats)
    if not torch.equal(dst, src):  # the copy really happened, on the data we think
        raise RuntimeError("copy check failed")
    del src, dst

    a = torch.randn(gemm_n, gemm_n, device=device, dtype=torch.bfloat16, generator=gen)
    b = torch.randn(gemm_n, gemm_n, device=device, dtype=torch.bfloat16, generator=gen)
    c = torch.empty(gemm_n, gemm_n, device=device, dtype=torch.bfloat16)
    gemm_ms = time_calls(lambda: torch.matmul(a, b, out=c), device, warmup, repeats)
    if not torch.isfinite(c).all():
        raise RuntimeError("GEMM produced non-finite values")

    copy_rate = 2 * copy_bytes / (statistics.median(copy_ms) / 1000)
    gemm_rate = 2 * gemm_n**3 / (statistics.median(gemm_ms) / 1000)
    return {
        "bench": "ceilings",
        "tool": "torch",
        **environment(device),
        "copy_bytes": copy_bytes,
        "copy_bytes_per_s": round(copy_rate),
        "copy_gb_s": round(copy_rate / 1e9, 1),
        "gemm_n": gemm_n,
        "gemm_dtype": "bfloat16",
        "gemm_flops_per_s": round(gemm_rate),
        "gemm_tflops": round(gemm_rate / 1e12, 1),
        "datasheet_bf16_flops_per_s": datasheet_flops(device),
        "warmup": warmup,
        "repeats": repeats,
        "copy_ms_runs": [round(t, 4) for t in copy_ms],
        "gemm_ms_runs": [round(t, 4) for t in gemm_ms],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--out", type=Path, help="also write the JSON line here")
    parser.add_argument("--gemm-n", type=int, help="default 8192 on cuda, 1024 on cpu")
    parser.add_argument("--copy-mib", type=int, help="default 2048 on cuda, 256 on cpu")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device: use --device cpu")
    gpu = args.device == "cuda"
    gemm_n = args.gemm_n or (8192 if gpu else 1024)
    copy_mib = args.copy_mib or (2048 if gpu else 256)

    result = measure(args.device, gemm_n, copy_mib << 20, args.warmup, args.repeats)
    sheet = result["datasheet_bf16_flops_per_s"]
    print(f"ceilings on {result['device']} ({args.device}): copy {result['copy_gb_s']} GB/s (read + write), "
          f"bf16 GEMM {gemm_n}³ {result['gemm_tflops']} TFLOP/s"
          + (f" ({result['gemm_flops_per_s'] / sheet:.0%} of the datasheet's {sheet / 1e12:.0f})" if sheet else ""),
          file=sys.stderr)
    line = json.dumps(result)
    print(line)
    if args.out:
        args.out.write_text(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
