#!/usr/bin/env python3
"""bitsandbytes' NF4 quantization with double quantization, reimplemented bit for bit.

    .venv/bin/python test/golden/nf4_reference.py [--out DIR]

bitsandbytes cannot be installed here (and needs a GPU for its reference kernels), so this module
reimplements, from /work/shared/reference.md and bitsandbytes' `functional.py` + `csrc/kernels.cu`,
exactly what `bnb.functional.quantize_4bit(W, blocksize=64, compress_statistics=True,
quant_type="nf4")` and `dequantize_4bit` compute on a GPU. All arithmetic is IEEE float32 in
NumPy (elementwise NumPy ops are never fused into FMAs), so every code and every dequantized value
is reproducible bit for bit. Run as a script it writes `test/golden/training/nf4/` (nf4.safetensors
+ nf4.json, see TRAINING.md), the fixture Attune's own NF4 implementation is tested against.

The algorithm, step by step (n = numel of the row-major flattened weight):

1. NF4 (blocksize 64). absmax[b] = max |x| over block b (fp32; the last block may be short).
   r = fl32(1 / absmax[b]) and scaled = fl32(x * r): bitsandbytes multiplies by the reciprocal
   (kernel `kQuantizeBlockwise`: `smem_absmax_value[0] = 1.0f / local_abs_max`, then
   `vals[j] * local_abs_max`), it never divides; the two differ by an ulp now and then, which can
   move a value across a code boundary (the fixture has such values, see `recip_vs_div`).
   code = number of the 15 decision constants t_i of bnb's `dQuantizeNF4` tree with scaled > t_i
   (`NF4_THRESHOLDS_BNB`: the kernel's float literals as nvcc compiles them, see there; 11 of
   them are the fp32 midpoints fl32((c_i + c_{i+1}) * 0.5), 4 (indices 0, 8, 12, 14) are the
   neighbouring float): the nearest code, a value equal to a constant takes the LOWER index
   (so at the single value t_i itself, for i = 1, 3, 4, 8, where t_i lies half an ulp above the
   exact midpoint, the lower code although the upper is nearer). NaN (an all-zero block:
   0 * inf) compares false everywhere: code 0 (-1.0), so such a block dequantizes to
   -1.0 * 0 = -0.0.
   Packing: byte j = code[2j] << 4 | code[2j+1], uint8 [ceil(n/2), 1]. For odd n the missing
   last element is the kernel's padding 0.0 quantized like the rest of its block (0 * r = 0 ->
   code 7; -> code 0 if that block's absmax is 0).
2. Double quantization of the fp32 absmax vector (blocksize 256):
   offset = mean(absmax) as a float32 (here: the exactly rounded mean, float64 accumulation;
   bitsandbytes takes torch's float32 `_absmax.mean()`, which can differ by an ulp on large
   tensors: compare offset to 1 ulp, and codes given the same offset),
   c = fl32(absmax - offset); absmax2[k] = max |c| per 256-block (fp32); s = fl32(c * fl32(1 /
   absmax2[k])); q8 = bitsandbytes' `dQuantize<0>` on the signed dynamic map (`code8` below): a
   7-step binary search from pivot 127 (steps 64..1) that ends on an EVEN pivot p, then
   s > code8[p] ? (s > fl32((code8[p+1] + code8[p]) * 0.5) ? p+1 : p)
                : (s < fl32((code8[p-1] + code8[p]) * 0.5) ? p-1 : p),
   i.e. the nearest value, and a value exactly on a midpoint goes to the EVEN index (NaN -> 0).
3. Dequantization: absmax' = fl32(fl32(code8[q8] * absmax2[k]) + offset) (two roundings, no FMA),
   w = fl32(NF4[code] * absmax'), then cast to the model dtype (round to nearest even for bf16).

`create_dynamic_map(signed=True)` is rebuilt exactly as bitsandbytes builds it (torch float32
linspace and arithmetic, then Python floats sorted, then a float32 tensor): 127 negative + 127
positive values  ±10^(i-6) · mean(adjacent points of linspace(0.1, 1, 2^i + 1)) for i = 0..6,
plus 0 and 1.0; code8[0] = -0.99297, code8[127] = 0, code8[255] = 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

F32 = np.float32
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "training" / "nf4"
SCRIPT = "test/golden/nf4_reference.py"
BLOCKSIZE = 64
NESTED_BLOCKSIZE = 256

# reference.md / bitsandbytes `nf4_dequantization_lut` (kernels.cu) and `get_4bit_type("nf4")`.
NF4_CODE = np.array(
    [
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
        -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
        0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
        0.7229568362236023, 1.0,
    ],
    dtype=F32,
)
# The decision constants of bitsandbytes' `dQuantizeNF4` (kernels.cu), ascending: x > t goes to
# the upper code. The kernel writes them as decimal float literals (`0.03979014977812767f`,
# `0.8614784181118011f`, ...), the shortest decimals (Python's repr) of the exact midpoints
# (c_i + c_{i+1}) / 2 computed in double,
# and nvcc (checked by compiling bitsandbytes' source with CUDA 13.0, also with --use_fast_math,
# and reading the PTX; GCC does the same) rounds each literal DIRECTLY from the decimal to fp32.
# Going through a Python float first (decimal -> double -> fp32) is a double rounding: the exact
# midpoints of indices 0, 8, 12 and 14 are ties between two fp32 values, their decimals lie a hair
# off the tie: decimal -> double lands exactly on the tie (the double midpoint), which fp32 then
# rounds to even, i.e. to the other neighbour (the fp32 midpoint, not nvcc's constant). So the
# constants are given here by their fp32 bit patterns as nvcc emits them (an exact-rational
# rounding of the decimal literals gives the same 15 patterns, see self_check); indices 0, 8, 12,
# 14 are one ulp from the fp32 midpoints `NF4_MIDPOINTS`, the other 11 equal them.
NF4_THRESHOLDS_BNB_BITS = (
    0xBF591CD9, 0xBF1C5270, 0xBEEB8480, 0xBEADEA76, 0xBE703CEC, 0xBE0D38BC, 0xBD3A7871, 0x3D22FAFF,
    0x3DF64863, 0x3E5067E0, 0x3E9582D4, 0x3EC753F9, 0x3F006D03, 0x3F248DAF, 0x3F5C89D9,
)
NF4_THRESHOLDS_BNB = np.array(NF4_THRESHOLDS_BNB_BITS, dtype=np.uint32).view(F32)
# The kernel's literals, for reference (do not convert these with float(): see above).
NF4_THRESHOLD_LITERALS = (
    "-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906", "-0.33967943489551544",
    "-0.23460740596055984", "-0.13791173323988914", "-0.045525018125772476", "0.03979014977812767",
    "0.1202552504837513", "0.2035212516784668", "0.2920137718319893", "0.3893125355243683",
    "0.5016634166240692", "0.6427869200706482", "0.8614784181118011",
)
NF4_MIDPOINTS = ((NF4_CODE[:-1] + NF4_CODE[1:]) * F32(0.5)).astype(F32)  # ties to even
NF4_THRESHOLDS_DIFFER_FROM_MIDPOINT = (0, 8, 12, 14)
assert np.all(np.diff(NF4_THRESHOLDS_BNB) > 0)
assert [i for i in range(15) if NF4_THRESHOLDS_BNB[i] != NF4_MIDPOINTS[i]] == list(NF4_THRESHOLDS_DIFFER_FROM_MIDPOINT)
assert all(np.nextafter(NF4_MIDPOINTS[i], NF4_THRESHOLDS_BNB[i]) == NF4_THRESHOLDS_BNB[i]
           for i in NF4_THRESHOLDS_DIFFER_FROM_MIDPOINT)
NF4_THRESHOLDS = NF4_THRESHOLDS_BNB  # what the quantizer compares with


def create_dynamic_map(signed: bool = True, max_exponent_bits: int = 7, total_bits: int = 8) -> torch.Tensor:
    """bitsandbytes.functional.create_dynamic_map, the same construction step for step."""
    data: list[float] = []
    non_sign_bits = total_bits - 1  # bnb: `total_bits - (1 if signed else 1)`
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    i = 0
    for i in range(max_exponent_bits):
        fraction_items = int(
            2 ** (i + non_sign_bits - max_exponent_bits) + 1
            if signed
            else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1
        )
        boundaries = torch.linspace(0.1, 1, fraction_items)  # default dtype: float32
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    if additional_items > 0:  # 0 for the default (signed, 7, 8)
        boundaries = torch.linspace(0.1, 1, additional_items + 1)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    data.append(0)
    data.append(1.0)
    assert len(data) == 2**total_bits
    gap = 256 - len(data)
    for _ in range(gap):
        data.append(0)
    data.sort()
    return torch.tensor(data, dtype=torch.float32)  # bnb: `Tensor(data)`


CODE8 = create_dynamic_map(signed=True).numpy().astype(F32)


# --------------------------------------------------------------------------------------------
# Helpers


def _as_f32(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to(torch.float32).cpu().numpy()
    return np.ascontiguousarray(np.asarray(x, dtype=F32).reshape(-1))


def _block_absmax(flat: np.ndarray, blocksize: int) -> np.ndarray:
    n = flat.size
    nb = (n + blocksize - 1) // blocksize
    padded = np.zeros(nb * blocksize, dtype=F32)
    padded[:n] = np.abs(flat)
    return padded.reshape(nb, blocksize).max(axis=1).astype(F32)


def _recip(absmax: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return (F32(1.0) / absmax).astype(F32)  # 1/0 = inf, as on the GPU


def _scale(flat: np.ndarray, recip: np.ndarray, blocksize: int) -> np.ndarray:
    per_elem = np.repeat(recip, blocksize)[: flat.size]
    with np.errstate(invalid="ignore"):
        return (flat * per_elem).astype(F32)  # 0 * inf = NaN for an all-zero block


def nf4_index(scaled: np.ndarray) -> np.ndarray:
    """bnb's dQuantizeNF4: how many of its decision constants lie strictly below x (NaN -> 0)."""
    with np.errstate(invalid="ignore"):
        return (scaled[..., None] > NF4_THRESHOLDS).sum(axis=-1).astype(np.uint8)


def nf4_index_tree(x: float) -> int:
    """The literal if/else tree of bnb's dQuantizeNF4 (scalar; used to check `nf4_index`)."""
    t = [float(v) for v in NF4_THRESHOLDS_BNB]
    if x > t[7]:
        if x > t[11]:
            if x > t[13]:
                return 15 if x > t[14] else 14
            return 13 if x > t[12] else 12
        if x > t[9]:
            return 11 if x > t[10] else 10
        return 9 if x > t[8] else 8
    if x > t[3]:
        if x > t[5]:
            return 7 if x > t[6] else 6
        return 5 if x > t[4] else 4
    if x > t[1]:
        return 3 if x > t[2] else 2
    return 1 if x > t[0] else 0


def dquantize8(code: np.ndarray, x: np.ndarray) -> np.ndarray:
    """bitsandbytes' `dQuantize<0>` (kernels.cu), vectorized, float32 throughout."""
    x = np.asarray(x, dtype=F32)
    pivot = np.full(x.shape, 127, dtype=np.int64)
    upper_pivot = np.full(x.shape, 255, dtype=np.int64)
    lower_pivot = np.zeros(x.shape, dtype=np.int64)
    lower = np.full(x.shape, -1.0, dtype=F32)
    upper = np.full(x.shape, 1.0, dtype=F32)
    val = code[pivot]
    i = 64
    while i > 0:
        with np.errstate(invalid="ignore"):
            gt = x > val
        lower_pivot = np.where(gt, pivot, lower_pivot)
        lower = np.where(gt, val, lower).astype(F32)
        upper_pivot = np.where(gt, upper_pivot, pivot)
        upper = np.where(gt, upper, val).astype(F32)
        pivot = np.where(gt, pivot + i, pivot - i)
        val = code[pivot]
        i >>= 1
    upper = np.where(upper_pivot == 255, code[255], upper).astype(F32)
    lower = np.where(lower_pivot == 0, code[0], lower).astype(F32)
    mid_up = ((upper + val) * F32(0.5)).astype(F32)
    mid_lo = ((lower + val) * F32(0.5)).astype(F32)
    with np.errstate(invalid="ignore"):
        gt = x > val
        res = np.where(gt, np.where(x > mid_up, upper_pivot, pivot), np.where(x < mid_lo, lower_pivot, pivot))
    return res.astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Quantize / dequantize


def quantize_nf4(x, blocksize: int = BLOCKSIZE) -> dict:
    """NF4 codes of x (any shape; fp32/bf16/fp16 input is read as float32, as the kernel does).

    Returns codes (uint8 [n], one per element), packed (uint8 [ceil(n/2), 1]), absmax (fp32)."""
    flat = _as_f32(x)
    n = flat.size
    absmax = _block_absmax(flat, blocksize)
    recip = _recip(absmax)
    codes = nf4_index(_scale(flat, recip, blocksize))
    if n % 2:
        with np.errstate(invalid="ignore"):
            pad = nf4_index(np.array([F32(0.0) * recip[-1]], dtype=F32))
        full = np.concatenate([codes, pad])
    else:
        full = codes
    packed = ((full[0::2].astype(np.uint16) << 4) | full[1::2]).astype(np.uint8).reshape(-1, 1)
    return {"codes": codes, "packed": packed, "absmax": absmax, "n": n}


def unpack_nf4(packed: np.ndarray, n: int) -> np.ndarray:
    p = np.asarray(packed, dtype=np.uint8).reshape(-1)
    out = np.empty(p.size * 2, dtype=np.uint8)
    out[0::2] = p >> 4
    out[1::2] = p & 0x0F
    return out[:n]


def quantize_blockwise8(x, code: np.ndarray = CODE8, blocksize: int = NESTED_BLOCKSIZE):
    """bnb.functional.quantize_blockwise (CUDA kernel, General8bit): codes uint8 [n], absmax fp32."""
    flat = _as_f32(x)
    absmax = _block_absmax(flat, blocksize)
    q = dquantize8(code, _scale(flat, _recip(absmax), blocksize))
    return q, absmax


def dequantize_blockwise8(q, absmax, code: np.ndarray = CODE8, blocksize: int = NESTED_BLOCKSIZE) -> np.ndarray:
    q = np.asarray(q, dtype=np.uint8).reshape(-1)
    per_elem = np.repeat(np.asarray(absmax, dtype=F32), blocksize)[: q.size]
    return (code[q] * per_elem).astype(F32)


def mean_f32(v: np.ndarray) -> np.float32:
    """The float32 mean, correctly rounded (float64 accumulation)."""
    return F32(np.sum(v.astype(np.float64)) / v.size)


def double_quantize(absmax: np.ndarray) -> dict:
    offset = mean_f32(absmax)
    centered = (absmax - offset).astype(F32)
    q8, absmax2 = quantize_blockwise8(centered)
    return {"offset": offset, "centered": centered, "absmax_q": q8, "absmax2": absmax2}


def double_dequantize(absmax_q, absmax2, offset) -> np.ndarray:
    return (dequantize_blockwise8(absmax_q, absmax2) + F32(offset)).astype(F32)


def dequantize_nf4(codes_or_packed, absmax, shape, dtype=torch.float32, blocksize: int = BLOCKSIZE,
                   packed: bool = False) -> torch.Tensor:
    n = int(np.prod(shape)) if len(shape) else 1
    codes = unpack_nf4(codes_or_packed, n) if packed else np.asarray(codes_or_packed, dtype=np.uint8)
    per_elem = np.repeat(np.asarray(absmax, dtype=F32), blocksize)[:n]
    w = (NF4_CODE[codes] * per_elem).astype(F32)
    return torch.from_numpy(w.copy()).reshape(tuple(shape)).to(dtype)


def quantize_nf4_double(x, blocksize: int = BLOCKSIZE) -> dict:
    """Everything bnb's quantize_4bit(compress_statistics=True) stores, plus both dequantizations."""
    dtype = x.dtype if isinstance(x, torch.Tensor) else torch.float32
    shape = tuple(x.shape)
    st = quantize_nf4(x, blocksize)
    dq = double_quantize(st["absmax"])
    absmax_dq = double_dequantize(dq["absmax_q"], dq["absmax2"], dq["offset"])
    st.update(dq)
    st["absmax_dq"] = absmax_dq
    st["shape"] = shape
    st["dtype"] = dtype
    st["dequant"] = dequantize_nf4(st["codes"], absmax_dq, shape, dtype, blocksize)
    st["dequant_single"] = dequantize_nf4(st["codes"], st["absmax"], shape, dtype, blocksize)
    return st


def nf4_roundtrip(w: torch.Tensor, double_quant: bool = True) -> torch.Tensor:
    """What a QLoRA/QDoRA base layer computes with: dequantize(quantize(w)) in w's dtype."""
    st = quantize_nf4_double(w)
    return st["dequant"] if double_quant else st["dequant_single"]


# --------------------------------------------------------------------------------------------
# Self-checks of the quirks (each is a property bitsandbytes' kernels have)


def _decimal_to_f32(literal: str) -> np.float32:
    """A decimal literal rounded once, exactly, to the nearest fp32 (ties to even), as a compiler does."""
    from decimal import Decimal
    from fractions import Fraction

    q = Fraction(Decimal(literal))
    guess = F32(float(q))
    candidates = [np.nextafter(guess, F32(-np.inf)), guess, np.nextafter(guess, F32(np.inf))]
    return min(candidates, key=lambda c: (abs(Fraction(float(c)) - q), int(np.array(c).view(np.uint32)) & 1))


def self_check() -> dict:
    checks = {}
    # The vectorized NF4 rule equals the literal tree, on every midpoint and its neighbours.
    probes = []
    for t in NF4_THRESHOLDS:
        probes += [np.nextafter(t, F32(-2)), t, np.nextafter(t, F32(2))]
    probes += [F32(-1), F32(0), F32(1), F32(1.0000001), F32(-1.0000001)]
    probes = np.array(probes, dtype=F32)
    vec = nf4_index(probes)
    tree = np.array([nf4_index_tree(float(v)) for v in probes], dtype=np.uint8)
    assert np.array_equal(vec, tree)
    assert nf4_index(np.array([np.nan], dtype=F32))[0] == 0
    checks["nf4_tree_matches"] = True
    # The constants are the kernel's decimal literals rounded directly to fp32 (exact rationals,
    # round to nearest even), as nvcc does; through a double, 0, 8, 12 and 14 would differ.
    via_double = np.array([float(s) for s in NF4_THRESHOLD_LITERALS], dtype=F32)
    direct = np.array([_decimal_to_f32(s) for s in NF4_THRESHOLD_LITERALS], dtype=F32)
    assert np.array_equal(direct.view(np.uint32), NF4_THRESHOLDS_BNB.view(np.uint32))
    assert np.flatnonzero(via_double != direct).tolist() == list(NF4_THRESHOLDS_DIFFER_FROM_MIDPOINT)
    assert np.array_equal(via_double, NF4_MIDPOINTS)
    checks["nf4_thresholds_are_the_literals_rounded_directly"] = True
    # dQuantize: every code value maps to itself; midpoints go to the even index.
    assert np.array_equal(dquantize8(CODE8, CODE8), np.arange(256, dtype=np.uint8))
    mids = ((CODE8[:-1] + CODE8[1:]) * F32(0.5)).astype(F32)
    got = dquantize8(CODE8, mids).astype(np.int64)
    lo = np.arange(255)
    even = np.where(lo % 2 == 0, lo, lo + 1)
    assert np.array_equal(got, even), "dQuantize ties go to the even index"
    # Nearest otherwise: dense probe against an exact nearest search.
    rng = np.random.default_rng(0)
    xs = rng.uniform(-1.01, 1.01, 200000).astype(F32)
    got = dquantize8(CODE8, xs).astype(np.int64)
    d = np.abs(xs.astype(np.float64)[:, None] - CODE8.astype(np.float64)[None, :])
    best = d.min(axis=1)
    assert np.all(d[np.arange(xs.size), got] == best)
    checks["dquantize8_nearest_ties_even"] = True
    assert dquantize8(CODE8, np.array([np.nan], dtype=F32))[0] == 0
    return checks


# --------------------------------------------------------------------------------------------
# The fixture


def _midpoint_tensor() -> np.ndarray:
    """Blocks whose absmax is a power of two (1, 2, 0.25), so x*(1/absmax) is exact: values exactly
    on the 15 NF4 decision constants (-> lower code) and one ulp either side (which includes the
    fp32 midpoint where it differs from the constant), plus ±absmax and 0."""
    blocks = []
    for scale in (1.0, 2.0, 0.25):
        s = F32(scale)
        vals = [s, -s, F32(0)]
        for t in NF4_THRESHOLDS:
            vals += [t * s, np.nextafter(t, F32(2)) * s, np.nextafter(t, F32(-2)) * s]
        vals = np.array(vals, dtype=F32)
        assert vals.size <= 64 and np.abs(vals).max() == s
        block = np.zeros(64, dtype=F32)
        block[: vals.size] = vals
        block[vals.size:] = (np.linspace(-0.9, 0.9, 64 - vals.size) * scale).astype(F32)
        blocks.append(block)
    return np.concatenate(blocks).reshape(3, 64)


def _recip_vs_div_tensor(rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """Blocks holding a value whose code differs between x*(1/absmax) (bitsandbytes) and
    x/absmax: an implementation that divides fails on the marked positions."""
    blocks, marked = [], []
    tries = 0
    while len(blocks) < 6:
        tries += 1
        assert tries < 200000
        a = F32(rng.uniform(0.05, 3.0))
        r = F32(F32(1) / a)
        t = NF4_THRESHOLDS[rng.integers(0, 15)]
        x0 = F32(t * a)
        for k in range(-4, 5):
            x = x0
            for _ in range(abs(k)):
                x = np.nextafter(x, F32(np.sign(k) * 10))
            if abs(x) >= a:
                continue
            by_mul = nf4_index(np.array([x * r], dtype=F32))[0]
            by_div = nf4_index(np.array([x / a], dtype=F32))[0]
            if by_mul != by_div:
                block = (rng.standard_normal(64).astype(F32) * F32(0.3) * a).astype(F32)
                block = np.clip(block, -a * F32(0.99), a * F32(0.99)).astype(F32)
                block[0] = a if rng.integers(0, 2) else -a
                pos = int(rng.integers(1, 64))
                block[pos] = x
                marked.append(len(blocks) * 64 + pos)
                blocks.append(block)
                break
    return np.concatenate(blocks).reshape(6, 64), marked


def _zeros_const_tensor() -> np.ndarray:
    """[5, 64] + 30: an all-zero block, a constant block, a negative constant block, a block with
    one non-zero value, a block of zeros and tiny values, and a short all-zero last block."""
    b = np.zeros((5, 64), dtype=F32)
    b[1, :] = F32(0.3)
    b[2, :] = F32(-0.7)
    b[3, 17] = F32(-0.05)
    b[4, ::3] = F32(1e-30)
    b[4, 1::7] = F32(-3e-31)
    return np.concatenate([b.reshape(-1), np.zeros(30, dtype=F32)])


def fixture_tensors() -> list[dict]:
    """Inputs of the NF4 fixture: name, tensor (torch), and what it covers."""
    g = torch.Generator().manual_seed(4242)
    rng = np.random.default_rng(4242)
    out = []

    def add(name, t, what):
        out.append({"name": name, "tensor": t, "covers": what})

    add("rand_64x96", torch.randn(64, 96, generator=g) / 8.0,
        "random normal weights, 96 full blocks, one short 256-block of absmax")
    add("rand_37x29", torch.randn(37, 29, generator=g) * 0.05,
        "n = 1073: odd (padding nibble), 16 full blocks + a short block of 49")
    large = torch.randn(130, 129, generator=g) * 0.02
    large[3, 5] = 0.9  # an outlier: one absmax far above the others
    add("rand_130x129", large, "n = 16770: 263 absmax values -> two 256-blocks (the second short), an outlier")
    add("midpoints", torch.from_numpy(_midpoint_tensor()),
        "values exactly on the 15 NF4 decision constants (-> lower code) and one ulp either side; absmax 1, 2, 0.25")
    rvd, marked = _recip_vs_div_tensor(rng)
    add("recip_vs_div", torch.from_numpy(rvd),
        "values whose code differs between x*(1/absmax) (bnb) and x/absmax; positions in `marked`")
    out[-1]["marked"] = marked
    add("zeros_const", torch.from_numpy(_zeros_const_tensor()),
        "all-zero blocks (NaN -> code 0, dequantized -0.0), constant blocks, a lone value, denormal-ish tiny values")
    add("constant_all", torch.full((4, 50), 0.5),
        "every block has the same absmax: absmax - offset = 0, absmax2 = 0, 8-bit codes 0 (NaN path)")
    add("bf16_48x40", (torch.randn(48, 40, generator=g) * 0.1).to(torch.bfloat16),
        "bf16 input: quantized from its float32 value, dequantized fp32 product rounded to bf16")
    return out


def _bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    view = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16}[a.dtype]
    return bool(torch.equal(a.contiguous().view(view), b.contiguous().view(view)))


def _f(x) -> float:
    return float(F32(x))


def blockwise8_fixture() -> dict:
    """A direct test of the 8-bit blockwise quantizer (the double-quant step): every midpoint of the
    dynamic map (-> even index), each code value, ±1 ulp, random values; n = 600."""
    mids = ((CODE8[:-1] + CODE8[1:]) * F32(0.5)).astype(F32)
    rng = np.random.default_rng(8)
    first = np.concatenate([[F32(1.0)], mids]).astype(F32)  # absmax2 = 1: scaling is exact
    second = np.concatenate(
        [[F32(-1.0)], CODE8[1:201], np.nextafter(mids[:50], F32(2)), np.nextafter(mids[50:55], F32(-2))]
    ).astype(F32)[:256]
    third = (rng.standard_normal(88) * 0.37).astype(F32)
    x = np.concatenate([first, second, third]).astype(F32)
    assert x.size == 600, x.size
    q, absmax = quantize_blockwise8(x)
    deq = dequantize_blockwise8(q, absmax)
    return {"input": x, "codes": q, "absmax": absmax, "dequant": deq}


def write_fixture(out: Path) -> dict:
    from safetensors.torch import save_file

    checks = self_check()
    out.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {
        "nf4_code": torch.from_numpy(NF4_CODE.copy()),
        "nf4_thresholds": torch.from_numpy(NF4_THRESHOLDS.copy()),
        "dynamic_map": torch.from_numpy(CODE8.copy()),
    }
    described = []
    for item in fixture_tensors():
        name, t = item["name"], item["tensor"].contiguous()
        st = quantize_nf4_double(t)
        n = st["n"]
        # Cross-check the dequantization against torch arithmetic (independent of the NumPy path).
        code_t = torch.from_numpy(NF4_CODE.copy())
        absmax_t = torch.from_numpy(
            (torch.from_numpy(CODE8.copy())[torch.from_numpy(st["absmax_q"].astype(np.int64))]
             * torch.from_numpy(np.repeat(st["absmax2"], NESTED_BLOCKSIZE)[: st["absmax"].size].copy())).numpy()
        ) + torch.tensor(float(st["offset"]), dtype=torch.float32)
        assert torch.equal(absmax_t, torch.from_numpy(st["absmax_dq"].copy()))
        w_t = (code_t[torch.from_numpy(st["codes"].astype(np.int64))]
               * torch.repeat_interleave(absmax_t, BLOCKSIZE)[:n]).reshape(st["shape"]).to(st["dtype"])
        assert _bits_equal(w_t, st["dequant"]), name
        # How many codes a division (x/absmax) instead of bnb's reciprocal multiply would change.
        flat = _as_f32(t)
        with np.errstate(invalid="ignore", divide="ignore"):
            by_div = nf4_index((flat / np.repeat(st["absmax"], BLOCKSIZE)[:n]).astype(F32))
        diff_div = int(np.sum(by_div != st["codes"]))
        torch_mean = float(torch.from_numpy(st["absmax"].copy()).mean())
        tensors[f"{name}.input"] = t
        tensors[f"{name}.packed"] = torch.from_numpy(st["packed"].copy())
        tensors[f"{name}.absmax"] = torch.from_numpy(st["absmax"].copy())
        tensors[f"{name}.absmax_q"] = torch.from_numpy(st["absmax_q"].copy())
        tensors[f"{name}.absmax2"] = torch.from_numpy(st["absmax2"].copy())
        tensors[f"{name}.offset"] = torch.tensor([float(st["offset"])], dtype=torch.float32)
        tensors[f"{name}.absmax_dq"] = torch.from_numpy(st["absmax_dq"].copy())
        tensors[f"{name}.dequant"] = st["dequant"].contiguous()
        tensors[f"{name}.dequant_single"] = st["dequant_single"].contiguous()
        entry = {
            "name": name,
            "covers": item["covers"],
            "shape": list(st["shape"]),
            "dtype": str(st["dtype"]).replace("torch.", ""),
            "numel": n,
            "blocks": int(st["absmax"].size),
            "nested_blocks": int(st["absmax2"].size),
            "offset": _f(st["offset"]),
            "offset_torch_float32_mean": torch_mean,
            "codes_histogram": np.bincount(st["codes"], minlength=16).tolist(),
            "codes_differing_if_divided": diff_div,
            "zero_blocks": int(np.sum(st["absmax"] == 0)),
        }
        if "marked" in item:
            entry["marked"] = item["marked"]
            assert diff_div >= len(item["marked"])
        described.append(entry)
    b8 = blockwise8_fixture()
    tensors["blockwise8.input"] = torch.from_numpy(b8["input"].copy())
    tensors["blockwise8.codes"] = torch.from_numpy(b8["codes"].copy())
    tensors["blockwise8.absmax"] = torch.from_numpy(b8["absmax"].copy())
    tensors["blockwise8.dequant"] = torch.from_numpy(b8["dequant"].copy())
    save_file(tensors, str(out / "nf4.safetensors"), metadata={"format": "pt"})
    doc = {
        "format_version": 1,
        "script": SCRIPT,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "blocksize": BLOCKSIZE,
        "nested_blocksize": NESTED_BLOCKSIZE,
        "quant_type": "nf4",
        "self_checks": checks,
        "rules": [
            "absmax[b] = max|x| over 64-element blocks of the row-major flattened tensor (last block may be short), fp32",
            "scaled = fl32(x * fl32(1/absmax[b])) -- a reciprocal multiply, not a division",
            "code = #{i : scaled > nf4_thresholds[i]} (NaN -> 0); nf4_thresholds = bnb's dQuantizeNF4 float literals rounded directly from decimal to fp32 as nvcc does (indices 0, 8, 12, 14 are one ulp from the fp32 midpoints)",
            "packed[j] = code[2j] << 4 | code[2j+1]; odd n: the last low nibble is the code of 0*fl32(1/absmax_last) (7, or 0 if that absmax is 0)",
            "offset = fl32(mean(absmax)) exactly rounded; centered = fl32(absmax - offset)",
            "absmax2[k] = max|centered| over 256-blocks; s = fl32(centered * fl32(1/absmax2[k]))",
            "absmax_q = bnb dQuantize<0>(dynamic_map, s): nearest, exact midpoint -> even index, NaN -> 0",
            "absmax_dq = fl32(fl32(dynamic_map[absmax_q] * absmax2[k]) + offset)",
            "dequant = to_dtype(fl32(nf4_code[code] * absmax_dq[b])); dequant_single uses absmax instead of absmax_dq",
            "blockwise8: the same 8-bit quantizer on its own (blocksize 256): codes, absmax, dequant = fl32(map[q]*absmax)",
        ],
        "tensors_file": "nf4.safetensors",
        "keys_per_tensor": ["input", "packed", "absmax", "absmax_q", "absmax2", "offset", "absmax_dq", "dequant",
                            "dequant_single"],
        "global_keys": ["nf4_code", "nf4_thresholds", "dynamic_map", "blockwise8.input", "blockwise8.codes",
                        "blockwise8.absmax", "blockwise8.dequant"],
        "tensors": described,
        "dynamic_map_head": [_f(v) for v in CODE8[:4]] + ["..."] + [_f(v) for v in CODE8[-4:]],
    }
    (out / "nf4.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return doc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    doc = write_fixture(args.out)
    for t in doc["tensors"]:
        print(f"{t['name']:14s} {str(t['shape']):12s} {t['dtype']:8s} blocks {t['blocks']:4d} nested {t['nested_blocks']}"
              f"  offset {t['offset']!r} (torch mean {t['offset_torch_float32_mean']!r})"
              f"  differ-if-divided {t['codes_differing_if_divided']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
