"""The model shapes the GPU benchmarks use, and the arithmetic both sides are judged by.

CONFIGS holds each model's config.json exactly as its Hub repository has it (the values, not
transformers 5's re-serialized form), so the generated folders parse like the real ones:
  llama-3.2-1b  meta-llama/Llama-3.2-1B   (GQA 32/8, head_dim 64, llama3 rope ×32, tied)
  qwen3-0.6b    Qwen/Qwen3-0.6B           (GQA 16/8, head_dim 128 ≠ hidden/heads, q/k norm, tied)
  llama-3.1-8b  meta-llama/Llama-3.1-8B   (GQA 32/8, llama3 rope ×8, untied lm_head)
plus "tiny", "tiny-qwen3" and "tiny-untied" (stand-ins for the three, in that order): the same
config keys at toy sizes, for testing the scripts on a CPU.

The formulas follow ../shared/design.md ("The engine"): LoRA training FLOPs per token
≈ 4N + 6·N_lora + 6·L·T·d, N the matmul parameters (the seven projections of every layer and
the lm_head, tied or not: it is a matmul either way; the embedding lookup is not), L layers,
T sequence, d = heads·head_dim. Gradient checkpointing's recompute is not counted (MFU counts
useful work, so a run that recomputes scores lower), nor DoRA's norm or a 4-bit dequantization.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# Dense bf16 tensor-core rate on the datasheet (no sparsity): H100 SXM5 and H200 alike.
DATASHEET_BF16_FLOPS = 989e12

_LLAMA3_COMMON: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "model_type": "llama",
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 128256,
}

_QWEN3_COMMON: dict[str, Any] = {
    "architectures": ["Qwen3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "max_position_embeddings": 40960,
    "model_type": "qwen3",
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000,
    "sliding_window": None,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "use_sliding_window": False,
}

CONFIGS: dict[str, dict[str, Any]] = {
    "llama-3.2-1b": {
        **_LLAMA3_COMMON,
        "head_dim": 64,
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_attention_heads": 32,
        "num_hidden_layers": 16,
        "num_key_value_heads": 8,
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "tie_word_embeddings": True,
        "transformers_version": "4.45.0.dev0",
    },
    "qwen3-0.6b": {
        **_QWEN3_COMMON,
        "head_dim": 128,
        "hidden_size": 1024,
        "intermediate_size": 3072,
        "max_window_layers": 28,
        "num_attention_heads": 16,
        "num_hidden_layers": 28,
        "num_key_value_heads": 8,
        "tie_word_embeddings": True,
        "transformers_version": "4.51.0",
        "vocab_size": 151936,
    },
    "llama-3.1-8b": {
        **_LLAMA3_COMMON,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "num_key_value_heads": 8,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "tie_word_embeddings": False,
        "transformers_version": "4.43.0.dev0",
    },
    # Toy sizes for CPU tests. The vocabulary must hold the tiny tokenizer's 352 ids.
    "tiny": {
        **_LLAMA3_COMMON,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": 16,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "tie_word_embeddings": True,
        "transformers_version": "4.45.0.dev0",
        "vocab_size": 512,
    },
    "tiny-untied": {  # the 8B's differences: untied lm_head, no head_dim key, rope factor 8
        **_LLAMA3_COMMON,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_size": 64,
        "intermediate_size": 224,
        "num_attention_heads": 4,
        "num_hidden_layers": 3,
        "num_key_value_heads": 1,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "tie_word_embeddings": False,
        "transformers_version": "4.43.0.dev0",
        "vocab_size": 512,
    },
    "tiny-qwen3": {
        **_QWEN3_COMMON,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": 32,  # ≠ hidden/heads, as in Qwen3
        "hidden_size": 64,
        "intermediate_size": 192,
        "max_window_layers": 2,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "tie_word_embeddings": True,
        "transformers_version": "4.51.0",
        "vocab_size": 512,
    },
}

# The tiny tokenizer of test/golden/make_golden.py written into each folder (a real one is not
# needed: the benchmarks feed seeded random ids; it makes the folder complete for loaders).
TOKENIZERS: dict[str, dict[str, Any]] = {
    name: ({"tokenizer": "qwen2", "thinking_tokens": True} if cfg["model_type"] == "qwen3" else {"tokenizer": "llama3"})
    for name, cfg in CONFIGS.items()
}


@dataclass(frozen=True)
class Dims:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int


def dims(config: dict[str, Any]) -> Dims:
    heads = config["num_attention_heads"]
    return Dims(
        hidden=config["hidden_size"],
        intermediate=config["intermediate_size"],
        layers=config["num_hidden_layers"],
        heads=heads,
        kv_heads=config.get("num_key_value_heads") or heads,
        head_dim=config.get("head_dim") or config["hidden_size"] // heads,
        vocab=config["vocab_size"],
    )


def projections(d: Dims) -> list[tuple[int, int]]:
    """(in, out) of each all-linear projection of one layer, in ALL_LINEAR's order."""
    q, kv = d.heads * d.head_dim, d.kv_heads * d.head_dim
    h, i = d.hidden, d.intermediate
    return [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]


def matmul_params(config: dict[str, Any]) -> int:
    """N: every layer's projections plus the lm_head (a matmul whether tied or not)."""
    d = dims(config)
    return d.layers * sum(a * b for a, b in projections(d)) + d.vocab * d.hidden


def adapter_params(config: dict[str, Any], rank: int, method: str) -> int:
    """N_lora: A (r×in) and B (out×r) per projection; DoRA (and QDoRA) add a magnitude per output."""
    d = dims(config)
    per_layer = sum(rank * (a + b) + (b if method in ("dora", "qdora") else 0) for a, b in projections(d))
    return d.layers * per_layer


def train_flops_per_token(config: dict[str, Any], seq: int, rank: int, method: str) -> float:
    """design.md's LoRA FLOPs per token: 4N + 6·N_lora + 6·L·T·d."""
    d = dims(config)
    return 4 * matmul_params(config) + 6 * adapter_params(config, rank, method) + 6 * d.layers * seq * d.heads * d.head_dim


def decode_bytes_per_token(config: dict[str, Any], context: float, adapter_rank: int = 0, dtype_bytes: int = 2) -> float:
    """The fewest bytes one decode step must read: every matmul weight once (plus the adapter's
    A and B), and the K and V cache of `context` earlier positions in every layer. Norms, the
    embedding row and the step's own K/V write are left out (under 0.1%)."""
    d = dims(config)
    weights = matmul_params(config) + (adapter_params(config, adapter_rank, "lora") if adapter_rank else 0)
    kv = d.layers * 2 * d.kv_heads * d.head_dim * context
    return (weights + kv) * dtype_bytes


def mfu(tokens_per_s: float, flops_per_token: float, flops_per_s: float | None) -> float | None:
    return None if not flops_per_s else tokens_per_s * flops_per_token / flops_per_s
