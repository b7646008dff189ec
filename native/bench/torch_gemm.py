"""PyTorch beside Attune on the shapes of native/bench/bench_gemm.cpp, in one run.

    python native/bench/torch_gemm.py [--ours native/build-tests/bench_gemm] [--seconds 1]

Times torch.nn.functional.linear with 1 and 2 threads (each in a fresh process, so that MKL /
OpenBLAS / OpenMP start with that many threads), the same way bench_gemm does (median per call
after one warm-up), runs bench_gemm when --ours names it, and prints one table with both.
fp32 rows: fp32 x and W. bf16 rows: PyTorch runs x and W in bf16 (its own bf16 path); Attune keeps
x in fp32 and converts W. OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, if set, slow PyTorch's BLAS down:
unset them in the command that runs this.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

PREFILL_T, DECODE_T, IN = 512, 1, 768
OUTS = (768, 2048, 32000)


def cases():
    # The order bench_gemm prints them in.
    for threads in (1, 2):
        for weights in ("f32", "bf16"):
            for t in (PREFILL_T, DECODE_T):
                for out in OUTS:
                    yield t, out, weights, threads


def median_seconds(fn, seconds):
    fn()
    times, start = [], time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def worker(threads, seconds):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    with torch.inference_mode():
        for t, out, weights, th in cases():
            if th != threads:
                continue
            dtype = torch.float32 if weights == "f32" else torch.bfloat16
            x = (torch.rand(t, IN) * 0.1).to(dtype)
            w = (torch.rand(out, IN) * 0.1).to(dtype)
            s = median_seconds(lambda: F.linear(x, w), seconds)
            print(f"{t}\t{out}\t{weights}\t{threads}\t{s!r}", flush=True)


def parse_ours(text):
    results = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        kind, t, _in, out, weights, threads, value, unit = line.split("\t")
        seconds = float(value) / 1e3 if unit == "ms" else 2 * int(t) * IN * int(out) / (float(value) * 1e9)
        results[(int(t), int(out), weights, int(threads))] = seconds
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ours", help="path to bench_gemm")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.seconds)

    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if name in os.environ:
            print(f"warning: {name} is set; PyTorch's BLAS may run slower kernels", file=sys.stderr)
    ours, header = {}, ""
    if args.ours:
        text = subprocess.run([args.ours, str(args.seconds)], check=True, capture_output=True, text=True).stdout
        ours, header = parse_ours(text), text.splitlines()[0]
    theirs = {}
    for threads in (1, 2):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                   OPENBLAS_NUM_THREADS=str(threads))
        cmd = [sys.executable, __file__, "--worker", str(threads), "--seconds", str(args.seconds)]
        for line in subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout.splitlines():
            t, out, weights, th, seconds = line.split("\t")
            theirs[(int(t), int(out), weights, int(th))] = float(seconds)

    import torch
    capability = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: "?")()
    print(f"{header}  |  torch {torch.__version__}, {capability}")
    print(f"{'case':<22}{'weights':<9}{'threads':<9}{'attune':>14}{'torch':>14}{'attune/torch':>14}")
    for key in cases():
        t, out, weights, threads = key
        mine, base = ours.get(key), theirs[key]
        if t == DECODE_T:
            cell = lambda s: f"{s * 1e3:.4f} ms" if s else "-"
        else:
            cell = lambda s: f"{2 * t * IN * out / s / 1e9:.1f} GF/s" if s else "-"
        ratio = base / mine if mine else None  # speed-up of Attune over PyTorch: > 1 is faster
        name = f"{'decode' if t == DECODE_T else 'prefill'} {t}x{IN}x{out}"
        print(f"{name:<22}{weights:<9}{threads:<9}{cell(mine):>14}{cell(base):>14}"
              f"{(f'{ratio:.2f}' if ratio else '-'):>14}")


if __name__ == "__main__":
    main()
