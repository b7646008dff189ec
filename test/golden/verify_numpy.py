#!/usr/bin/env python3
"""Cross-check the golden fixtures against reference.md with an independent NumPy forward pass.

    .venv/bin/python test/golden/verify_numpy.py [FIXTURES_DIR]

Reads each fixture folder the way Attune does (config.json in either rope form, single or
sharded safetensors, tied or untied head), recomputes the logits and losses in float64 from
reference.md's formulas alone, and compares them with reference.json / reference.safetensors
(which transformers computed). make_golden.py runs it after writing the fixtures.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

HERE = Path(__file__).resolve().parent


def load_weights(folder: Path) -> dict[str, np.ndarray]:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        weights: dict[str, np.ndarray] = {}
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            weights.update(load_file(str(folder / shard)))
        return weights
    return load_file(str(folder / "model.safetensors"))


def rope_settings(cfg: dict) -> tuple[float, dict | None]:
    """Accept both the Hub's rope_theta + rope_scaling and transformers 5's rope_parameters."""
    params = cfg.get("rope_parameters") or {}
    theta = params.get("rope_theta", cfg.get("rope_theta", 10000.0))
    scaling = cfg.get("rope_scaling") or params
    if scaling.get("rope_type", scaling.get("type", "default")) == "default":
        scaling = None
    return theta, scaling


def inv_freq(theta: float, dim: int, scaling: dict | None) -> np.ndarray:
    inv = 1.0 / theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    if scaling is None:
        return inv
    assert scaling["rope_type"] == "llama3", scaling
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    length = scaling["original_max_position_embeddings"]
    out = []
    for f in inv:
        wavelen = 2 * math.pi / f
        if wavelen > length / low:
            out.append(f / factor)
        elif wavelen < length / high:
            out.append(f)
        else:
            s = (length / wavelen - low) / (high - low)
            out.append((1 - s) * f / factor + s * f)
    return np.array(out)


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


def forward(folder: Path, ids: list[int]) -> np.ndarray:
    cfg = json.loads((folder / "config.json").read_text())
    w = {k: v.astype(np.float64) for k, v in load_weights(folder).items()}
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    eps = cfg["rms_norm_eps"]
    theta, scaling = rope_settings(cfg)
    positions = np.arange(len(ids), dtype=np.float64)
    angles = positions[:, None] * inv_freq(theta, head_dim, scaling)[None, :]
    cos = np.cos(np.concatenate([angles, angles], axis=-1))[None]  # [1, T, head_dim]
    sin = np.sin(np.concatenate([angles, angles], axis=-1))[None]
    T = len(ids)
    mask = np.triu(np.full((T, T), -np.inf), k=1)

    def linear(x, prefix):
        y = x @ w[prefix + ".weight"].T
        return y + w[prefix + ".bias"] if prefix + ".bias" in w else y

    x = w["model.embed_tokens.weight"][ids]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}"
        h = rms_norm(x, w[p + ".input_layernorm.weight"], eps)
        q = linear(h, p + ".self_attn.q_proj").reshape(T, heads, head_dim).transpose(1, 0, 2)
        k = linear(h, p + ".self_attn.k_proj").reshape(T, kv_heads, head_dim).transpose(1, 0, 2)
        v = linear(h, p + ".self_attn.v_proj").reshape(T, kv_heads, head_dim).transpose(1, 0, 2)
        if p + ".self_attn.q_norm.weight" in w:  # Qwen3: per-head RMSNorm before RoPE
            q = rms_norm(q, w[p + ".self_attn.q_norm.weight"], eps)
            k = rms_norm(k, w[p + ".self_attn.k_norm.weight"], eps)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        group = heads // kv_heads
        k, v = np.repeat(k, group, axis=0), np.repeat(v, group, axis=0)
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(head_dim) + mask
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attn = (scores / scores.sum(-1, keepdims=True)) @ v
        x = x + linear(attn.transpose(1, 0, 2).reshape(T, heads * head_dim), p + ".self_attn.o_proj")
        h = rms_norm(x, w[p + ".post_attention_layernorm.weight"], eps)
        gate, up = linear(h, p + ".mlp.gate_proj"), linear(h, p + ".mlp.up_proj")
        x = x + linear(gate / (1 + np.exp(-gate)) * up, p + ".mlp.down_proj")
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else w["lm_head.weight"]
    if cfg.get("tie_word_embeddings"):
        assert "lm_head.weight" not in w, "tied model stores lm_head"
    return x @ head.T


def loss(logits: np.ndarray, labels: np.ndarray) -> float:
    logits, targets = logits[:-1], labels[1:]
    keep = targets != -100
    lse = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    nll = lse - logits[np.arange(len(targets)), np.where(keep, targets, 0)]
    return float(nll[keep].mean())


def verify(folder: Path) -> str:
    ref = json.loads((folder / "reference.json").read_text())
    tensors = load_file(str(folder / "reference.safetensors"))
    ids = ref["forward"]["input_ids"]
    assert tensors["input_ids"].tolist() == ids
    logits = forward(folder, ids)
    expected = tensors["logits"].astype(np.float64)
    err = float(np.abs(logits - expected).max())
    scale = float(np.abs(expected).max())
    if err > 1e-4 * max(1.0, scale):
        raise AssertionError(f"{folder.name}: logits differ from transformers by {err:g}")
    labels = np.array(ids)
    l_full = loss(logits, labels)
    labels[ref["forward"]["masked_label_positions"]] = -100
    l_masked = loss(logits, labels)
    for name, mine, theirs in (("loss", l_full, ref["forward"]["loss"]), ("loss_masked", l_masked, ref["forward"]["loss_masked"])):
        if abs(mine - theirs) > 1e-5 * max(1.0, abs(theirs)):
            raise AssertionError(f"{folder.name}: {name} {mine} != {theirs}")
    # Greedy continuation, recomputed without a KV cache.
    for g in ref["greedy"]:
        seq = list(g["prompt_ids"])
        for _ in range(g["max_new_tokens"]):
            seq.append(int(forward(folder, seq)[-1].argmax()))
        if seq[len(g["prompt_ids"]):] != g["new_ids"]:
            raise AssertionError(f"{folder.name}: greedy ids differ")
    return f"{folder.name}: logits max |Δ| {err:.2e} (max |logit| {scale:.1f}), losses and greedy ids agree"


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else HERE / "fixtures"
    folders = sorted(p for p in root.iterdir() if (p / "reference.json").exists())
    if not folders:
        print(f"no fixtures under {root}", file=sys.stderr)
        return 1
    for folder in folders:
        print(verify(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
