#!/usr/bin/env python3
"""Generate Attune's golden fixtures: tiny random Hugging Face models plus reference outputs.

    bash scripts/python-env.sh && .venv/bin/python test/golden/make_golden.py [--out DIR] [--only NAME ...]

For every architecture Attune loads (Llama 3 with llama3 rope scaling, a tied SmolLM2-like Llama,
a sharded Llama, Mistral, Qwen2, Qwen3) this writes test/golden/fixtures/<name>/ with a complete
model folder (config.json, safetensors weights, tokenizer.json, tokenizer_config.json, chat
template, generation_config.json) and the references computed by transformers and tokenizers
themselves on CPU in float32: reference.json (tokenization, chat templates, losses, greedy
generations, metadata) and reference.safetensors (logits, input ids).

Everything is deterministic (fixed seeds, single thread, deterministic algorithms): running the
script twice gives byte-identical files with the same library versions. See README.md here for
the format. Tests read the fixtures; they never need Python.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers  # noqa: E402
from tokenizers import processors, trainers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

FORMAT_VERSION = 1
SCRIPT = "test/golden/make_golden.py"
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "fixtures"

# Sizes shared by every model (qwen3 overrides head_dim).
HIDDEN = 64
LAYERS = 2
HEADS = 4
INTERMEDIATE = 96
MAX_POSITIONS = 256
VOCAB = 352  # tokenizer size (qwen3 adds 2 tokens; qwen2's config pads vocab_size to 384)
# (sizes chosen to keep all fixtures under 3 MB together)

# Weight init. Linear layers get std 1/sqrt(fan_in) so every block changes the residual stream by
# O(1); embeddings / lm_head get EMBED_STD so logits (normalized hidden · row) have std about
# EMBED_STD·sqrt(HIDDEN) ≈ 3.2: well separated, so argmax and losses are far from ties.
EMBED_STD = 0.4
# o_proj / down_proj (the layers writing into the residual stream) get OUT_GAIN/sqrt(fan_in): the
# blocks then dominate the token's own embedding, which otherwise makes tied models (logit =
# hidden · embedding) repeat the current token forever.
OUT_GAIN = 3.0
NORM_STD = 0.2  # norm weights are 1 + NORM_STD·randn: far enough from 1 that ignoring them shows
BIAS_STD = 0.3  # qwen2 q/k/v biases
GREEDY_NEW_TOKENS = 16
MIN_MARGIN = 1e-2  # required top-1 − top-2 logit gap at every greedy step (brief: > 1e-3)
MIN_DISTINCT_GREEDY = 4  # avoid fixtures whose greedy output is one token repeated
MAX_SEED_TRIES = 50

# --------------------------------------------------------------------------------------------
# A small English corpus to train the tokenizers on (written for this script; public domain).
CORPUS = """\
Attune runs and fine-tunes language models on your own computer. It loads a model, reads its
tokenizer and chat template, and then answers questions or learns from your examples.
The quick brown fox jumps over the lazy dog. The dog does not mind; it has seen the fox before.
A small café on the corner sells coffee, tea and fresh bread every morning at seven o'clock.
Numbers matter too: 3 apples, 12 eggs, 2024 pages, 99 bottles and 1,000,000 tiny stars.
When the rain stopped, the children ran outside to play in the garden until dinner was ready.
She said, "I'll be there at noon." He replied, "We're already late, aren't we?"
Training a model means showing it many examples and slowly adjusting its weights so that the
next token it predicts becomes more likely to be the right one. The loss goes down over time.
Once upon a time there was a little robot who wanted to learn how to write poems about the sea.
Every evening the robot counted the waves, listened to the wind, and wrote one new line.
Questions: What is the capital of France? How many legs does a spider have? Why is the sky blue?
Answers: Paris is the capital of France. A spider has eight legs. Sunlight scatters in the air.
The system prompt tells the assistant how to behave; the user asks, and the assistant answers.
Good tests compare every number with a reference, token by token, logit by logit.
"""

# Regexes of the real pre-tokenizers (Llama 3 / tiktoken-style and Qwen2).
LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Chat templates (shortened versions of the real ones).
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
CHATML_DEFAULT_SYSTEM_TEMPLATE = (  # Qwen2.5-style: a default system prompt when none is given
    "{%- for message in messages %}\n"
    "    {%- if loop.first and message.role != 'system' %}\n"
    "        {{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "    {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)
CHATML_TEMPLATE = (  # SmolLM2-style ChatML, no default system prompt
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
QWEN3_TEMPLATE = (  # written to chat_template.jinja; ChatML plus Qwen3's enable_thinking switch
    "{%- for message in messages %}\n"
    "    {%- if message.role == 'assistant' and '</think>' in message.content %}\n"
    "        {%- set content = message.content.split('</think>')[-1].lstrip('\\n') %}\n"
    "    {%- else %}\n"
    "        {%- set content = message.content %}\n"
    "    {%- endif %}\n"
    "    {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "    {%- if enable_thinking is defined and enable_thinking is false %}\n"
    "        {{- '<think>\\n\\n</think>\\n\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
)
# Put in qwen3's tokenizer_config.json too: chat_template.jinja must win over it.
DECOY_TEMPLATE = "{{ 'DECOY: tokenizer_config.json chat_template used although chat_template.jinja exists' }}"
MISTRAL_TEMPLATE = (  # Mistral-instruct style; a system message is prepended to the first user turn
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content'] %}{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- bos_token }}"
    "{%- for message in loop_messages %}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif %}"
    "{%- if message['role'] == 'user' %}"
    "{%- if loop.first and system_message is defined %}"
    "{{- '[INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' }}"
    "{%- else %}{{- '[INST] ' + message['content'] + ' [/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- message['content'] + eos_token }}"
    "{%- else %}{{- raise_exception('Only user and assistant roles are supported!') }}{%- endif %}"
    "{%- endfor %}"
)

CONVERSATIONS = [
    (
        [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        True,
    ),
    (
        [
            {"role": "user", "content": "Write one line about the sea."},
            {"role": "assistant", "content": "The sea counts the waves and never gets tired."},
            {"role": "user", "content": "Now one about the café 🙂"},
        ],
        True,
    ),
    (
        [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "How many legs does a spider have?"},
            {"role": "assistant", "content": "Eight."},
        ],
        False,
    ),
]

FORWARD_TEXT = "The quick brown fox jumps over the lazy dog, and the robot writes a poem."
FORWARD_MAX_TOKENS = 20
MASKED_LABEL_POSITIONS = [0, 1, 2, 3, 4, 11]  # labels set to -100 for loss_masked
GREEDY_PROMPTS = ["Once upon a time there was", "The children ran outside to", "Training a model means"]


def tokenization_texts(special_in_text: str) -> list[str]:
    return [
        "Hello world! This is a test.",
        "Don't you think it's 'quoted'? We'll see, I'm sure they're fine.",
        "  leading spaces, a  double space,\ttabs\t\tand\n\nnew lines   \n  trailing   ",
        "café naïve résumé déjà vu",
        "emoji 🙂🚀 and 👍🏽 done",
        "中文字符 and 日本語のテキスト",
        "numbers 1234567 and 3.14159, year 2024",
        f"before {special_in_text} after",
        "",
    ]


# --------------------------------------------------------------------------------------------
# Tokenizers


def train_bytelevel(style: str, vocab_size: int, leading_specials: list[str]) -> Tokenizer:
    """Byte-level BPE like GPT-2 / Llama 3 / Qwen2. style: 'llama3' | 'qwen2' | 'gpt2'."""
    tok = Tokenizer(models.BPE())
    if style == "llama3":
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
            ]
        )
    elif style == "qwen2":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
            ]
        )
    elif style == "gpt2":  # SmolLM2: individual digits, then GPT-2's own regex
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
            ]
        )
    else:
        raise ValueError(style)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=leading_specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS.splitlines(keepends=True), trainer)
    return tok


def train_sentencepiece_style(vocab_size: int) -> Tokenizer:
    """Llama 2 / Mistral / TinyLlama-style BPE: '▁' for spaces, <0xNN> byte fallback tokens,
    <unk> <s> </s> at ids 0 1 2 and the 256 byte tokens at 3..258 (the layout transformers'
    LlamaConverter writes for those models)."""
    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False)
    trainer_tok.train_from_iterator(CORPUS.splitlines(), trainer)
    trained = json.loads(trainer_tok.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for piece, _ in sorted(trained["vocab"].items(), key=lambda item: item[1]):
        vocab.setdefault(piece, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False) for t in ("<unk>", "<s>", "</s>")]
    )
    return tok


def add_bos_processor(tok: Tokenizer, bos: str, byte_level: bool) -> None:
    bos_id = tok.token_to_id(bos)
    template = processors.TemplateProcessing(
        single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, bos_id)]
    )
    if byte_level:  # as in Llama 3's tokenizer.json
        tok.post_processor = processors.Sequence(
            [processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True), template]
        )
    else:
        tok.post_processor = template


def build_tokenizer(spec: dict) -> tuple[Tokenizer, dict]:
    """Returns the tokenizer and the special-token settings for tokenizer_config.json."""
    kind = spec["tokenizer"]
    if kind == "llama3":
        tok = train_bytelevel("llama3", VOCAB - 6, [])
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                    "<|reserved_special_token_0|>", "<|eot_id|>"]
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
        add_bos_processor(tok, "<|begin_of_text|>", byte_level=True)
        st = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": None, "unk_token": None,
              "add_bos_token": True, "chat_template": LLAMA3_TEMPLATE, "tokenizer_class": "PreTrainedTokenizerFast",
              "special_in_text": "<|eot_id|>"}
    elif kind == "smollm2":
        # Specials at ids 0..2 (trained with the vocab), as in SmolLM2; BOS prepended.
        tok = train_bytelevel("gpt2", VOCAB, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
        tok.add_special_tokens(
            [AddedToken(t, special=True, normalized=False) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")]
        )
        add_bos_processor(tok, "<|endoftext|>", byte_level=True)
        st = {"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
              "unk_token": "<|endoftext|>", "add_bos_token": True, "chat_template": CHATML_TEMPLATE,
              "tokenizer_class": "PreTrainedTokenizerFast", "special_in_text": "<|im_start|>"}
    elif kind == "qwen2":
        tok = train_bytelevel("qwen2", VOCAB - 3, [])
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
        if spec.get("thinking_tokens"):  # Qwen3: added tokens that are NOT special
            tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ("<think>", "</think>")])
        tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
        st = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None,
              "add_bos_token": False, "chat_template": CHATML_DEFAULT_SYSTEM_TEMPLATE,
              "tokenizer_class": "Qwen2Tokenizer", "special_in_text": "<|im_end|>"}
    elif kind == "mistral":
        tok = train_sentencepiece_style(VOCAB - 259)
        add_bos_processor(tok, "<s>", byte_level=False)
        st = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": None, "unk_token": "<unk>",
              "add_bos_token": True, "chat_template": MISTRAL_TEMPLATE, "tokenizer_class": "LlamaTokenizer",
              "special_in_text": "</s>"}
    else:
        raise ValueError(kind)
    return tok, st


def tokenizer_config(tok: Tokenizer, st: dict, chat_template: str | None) -> dict:
    added = {}
    for idx, token in sorted(tok.get_added_tokens_decoder().items()):
        added[str(idx)] = {
            "content": token.content,
            "lstrip": token.lstrip,
            "normalized": token.normalized,
            "rstrip": token.rstrip,
            "single_word": token.single_word,
            "special": token.special,
        }
    cfg = {
        "add_bos_token": st["add_bos_token"],
        "add_eos_token": False,
        "added_tokens_decoder": added,
        "bos_token": st["bos_token"],
        "eos_token": st["eos_token"],
        "pad_token": st["pad_token"],
        "unk_token": st["unk_token"],
    }
    if chat_template is not None:
        cfg["chat_template"] = chat_template
    cfg.update(
        {
            "clean_up_tokenization_spaces": False,
            "model_input_names": ["input_ids", "attention_mask"],
            "model_max_length": MAX_POSITIONS,
            "tokenizer_class": st["tokenizer_class"],
        }
    )
    return cfg


# --------------------------------------------------------------------------------------------
# Models

SPECS = [
    {
        "name": "llama",
        "arch": "LlamaForCausalLM",
        "tokenizer": "llama3",
        "config_style": "legacy",  # rope_theta + rope_scaling at top level, as on the Hub
        "seed": 1000,
        "kv_heads": 2,
        "tied": False,
        "rope_theta": 500000.0,
        "rope_scaling": {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
        "eos": ["<|end_of_text|>", "<|eot_id|>"],
        "rms_norm_eps": 1e-5,
    },
    {
        "name": "llama_tied",
        "arch": "LlamaForCausalLM",
        "tokenizer": "smollm2",
        "config_style": "legacy",
        "seed": 2000,
        "kv_heads": 4,
        "tied": True,
        "rope_theta": 100000.0,
        "eos": "<|im_end|>",
        "rms_norm_eps": 1e-5,
    },
    {
        "name": "mistral",
        "arch": "MistralForCausalLM",
        "tokenizer": "mistral",
        "config_style": "v5",  # transformers 5's rope_parameters
        "seed": 3000,
        "kv_heads": 2,
        "tied": False,
        "rope_theta": 1000000.0,
        "eos": "</s>",
        "rms_norm_eps": 1e-5,
    },
    {
        "name": "qwen2",
        "arch": "Qwen2ForCausalLM",
        "tokenizer": "qwen2",
        "config_style": "legacy",
        "seed": 4000,
        "kv_heads": 2,
        "tied": True,
        "rope_theta": 1000000.0,
        "eos": ["<|im_end|>", "<|endoftext|>"],
        "pad_vocab_to": 64,  # like real Qwen: config vocab_size > tokenizer size
        "rms_norm_eps": 1e-6,
    },
    {
        "name": "qwen3",
        "arch": "Qwen3ForCausalLM",
        "tokenizer": "qwen2",
        "thinking_tokens": True,
        "chat_template_file": True,
        "config_style": "v5",
        "seed": 5000,
        "kv_heads": 2,
        "head_dim": 32,
        "tied": False,
        "rope_theta": 1000000.0,
        "eos": "<|im_end|>",
        "rms_norm_eps": 1e-6,
    },
    {
        "name": "llama_sharded",
        "same_as": "llama",
        "config_style": "v5",
        "max_shard_size": "200KB",
    },
]


def make_config(spec: dict, vocab_size: int, tok: Tokenizer, st: dict):
    eos = spec["eos"]
    eos_id = [tok.token_to_id(e) for e in eos] if isinstance(eos, list) else tok.token_to_id(eos)
    bos_id = tok.token_to_id(st["bos_token"]) if st["bos_token"] else None
    if spec["tokenizer"] == "qwen2":
        bos_id = tok.token_to_id("<|endoftext|>")  # as in real Qwen configs
    pad_id = tok.token_to_id(st["pad_token"]) if st["pad_token"] else None
    rope = {"rope_type": "default", "rope_theta": spec["rope_theta"]}
    if "rope_scaling" in spec:
        rope = {**spec["rope_scaling"], "rope_theta": spec["rope_theta"]}
    common = dict(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=spec["kv_heads"],
        max_position_embeddings=MAX_POSITIONS,
        rms_norm_eps=spec["rms_norm_eps"],
        tie_word_embeddings=spec["tied"],
        rope_parameters=rope,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        dtype="float32",
        use_cache=True,
    )
    arch = spec["arch"]
    if arch == "LlamaForCausalLM":
        return LlamaConfig(**common), LlamaForCausalLM
    if arch == "MistralForCausalLM":
        return MistralConfig(**common, sliding_window=None, head_dim=HIDDEN // HEADS), MistralForCausalLM
    if arch == "Qwen2ForCausalLM":
        return Qwen2Config(**common, use_sliding_window=False, sliding_window=None, max_window_layers=LAYERS), \
            Qwen2ForCausalLM
    if arch == "Qwen3ForCausalLM":
        return Qwen3Config(**common, head_dim=spec["head_dim"], use_sliding_window=False, sliding_window=None,
                           max_window_layers=LAYERS, attention_bias=False), Qwen3ForCausalLM
    raise ValueError(arch)


@torch.no_grad()
def init_weights(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for name, param in sorted(model.named_parameters(), key=lambda item: item[0]):
        if name.endswith("norm.weight"):  # input/post_attention/final/q/k norms
            values = 1.0 + NORM_STD * torch.randn(param.shape, generator=gen)
        elif name.endswith(".bias"):
            values = BIAS_STD * torch.randn(param.shape, generator=gen)
        elif "embed_tokens" in name or name == "lm_head.weight":
            values = EMBED_STD * torch.randn(param.shape, generator=gen)
        elif param.dim() == 2:
            gain = OUT_GAIN if name.endswith(("o_proj.weight", "down_proj.weight")) else 1.0
            values = gain * torch.randn(param.shape, generator=gen) / math.sqrt(param.shape[1])
        else:
            raise RuntimeError(f"no init rule for {name}")
        param.copy_(values)


def rewrite_config_legacy(path: Path) -> None:
    """transformers 5 writes `rope_parameters` (with rope_theta inside). Published checkpoints have
    `rope_theta` and `rope_scaling` at the top level instead; write that form for 'legacy' fixtures
    (transformers 5 reads both)."""
    cfg = json.loads(path.read_text())
    rope = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["rope_scaling"] = rope if rope.get("rope_type", "default") != "default" else None
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def expected_inv_freq(theta: float, dim: int, scaling: dict | None) -> torch.Tensor:
    """reference.md's formula, written independently of transformers."""
    inv = [1.0 / theta ** (i / dim) for i in range(0, dim, 2)]
    if not scaling:
        return torch.tensor(inv, dtype=torch.float64)
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
    return torch.tensor(out, dtype=torch.float64)


def check_rope(model, spec: dict, head_dim: int) -> dict:
    inv = model.model.rotary_emb.inv_freq.double()
    scaling = spec.get("rope_scaling")
    expected = expected_inv_freq(spec["rope_theta"], head_dim, scaling)
    if not torch.allclose(inv, expected, rtol=1e-6, atol=0):
        raise RuntimeError(f"{spec['name']}: transformers' inv_freq {inv.tolist()} != expected {expected.tolist()}")
    summary = {"inv_freq": [float(x) for x in inv.float().tolist()]}
    if scaling:
        plain = expected_inv_freq(spec["rope_theta"], head_dim, None)
        ratio = (plain / inv).tolist()
        regimes = ["unchanged" if abs(r - 1) < 1e-9 else "scaled" if abs(r - scaling["factor"]) < 1e-6 else "smoothed"
                   for r in ratio]
        if not {"unchanged", "scaled", "smoothed"} <= set(regimes):
            raise RuntimeError(f"{spec['name']}: rope scaling does not exercise all three regimes: {regimes}")
        summary["inv_freq_unscaled"] = [float(x) for x in plain.float().tolist()]
        summary["regimes"] = regimes
    return summary


# --------------------------------------------------------------------------------------------
# References


def f32(x) -> float:
    """A float32 value as the Python float with the same value (JSON round-trips it exactly)."""
    t = x.detach() if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=torch.float64)
    return float(t.to(torch.float32).item())


def top2_margin(logits: torch.Tensor) -> float:
    top = torch.topk(logits.float(), 2).values
    return float(top[0] - top[1])


@torch.no_grad()
def greedy_reference(model, tok, prompt: str, vocab_real: int, eos_ids: list[int]) -> dict | str:
    """The reference, or why this model/prompt pair is not a good one."""
    ids = tok(prompt).input_ids
    input_ids = torch.tensor([ids])
    gen_cfg = GenerationConfig(
        do_sample=False, max_new_tokens=GREEDY_NEW_TOKENS, min_new_tokens=0, eos_token_id=None,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else 0, bos_token_id=None,
        num_beams=1, temperature=None, top_p=None, top_k=None, repetition_penalty=None,
    )
    # generate() fills every None in gen_cfg from model.generation_config (eos ids included), so
    # the model's eos ids are cleared while it runs: it must produce all GREEDY_NEW_TOKENS.
    saved_eos = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = None
    try:
        out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), generation_config=gen_cfg,
                             return_dict_in_generate=True, output_logits=True)
    finally:
        model.generation_config.eos_token_id = saved_eos
    new = out.sequences[0, len(ids):].tolist()
    if len(new) != GREEDY_NEW_TOKENS:
        raise RuntimeError(f"generate stopped early: {new}")
    # Re-check without a KV cache: a full forward over the final sequence must give the same argmax
    # at every generated position, and every margin must be comfortable on both paths.
    full = model(out.sequences, use_cache=False).logits[0]
    margins = []
    for step, token in enumerate(new):
        cached = out.logits[step][0]
        nocache = full[len(ids) - 1 + step]
        if int(cached.argmax()) != token or int(nocache.argmax()) != token:
            raise RuntimeError("cached and uncached argmax disagree")
        margins.append(min(top2_margin(cached), top2_margin(nocache)))
    if min(margins) <= MIN_MARGIN:
        return f"prompt {prompt!r}: top-2 margin {min(margins):.2g}"
    if len(set(new)) < MIN_DISTINCT_GREEDY:
        return f"prompt {prompt!r}: only {len(set(new))} distinct tokens"
    if max(new) >= vocab_real:
        return f"prompt {prompt!r}: generated a padding id beyond the tokenizer"
    return {
        "prompt": prompt,
        "prompt_ids": ids,
        "max_new_tokens": GREEDY_NEW_TOKENS,
        "stop_on_eos": False,
        "new_ids": new,
        "new_text": tok.decode(new, skip_special_tokens=False),
        "eos_ids_generated": [t for t in new if t in eos_ids],
        "min_top2_margin": f32(min(margins)),
        "top2_margins": [f32(m) for m in margins],
    }


@torch.no_grad()
def forward_reference(model, tok) -> tuple[dict, dict]:
    ids = tok(FORWARD_TEXT).input_ids[:FORWARD_MAX_TOKENS]
    input_ids = torch.tensor([ids])
    out = model(input_ids, labels=input_ids, use_cache=False)
    logits = out.logits[0].float().contiguous()
    # Independent loss check (fp32 logits, shift by one, mean over non-ignored).
    manual = torch.nn.functional.cross_entropy(logits[:-1], input_ids[0, 1:], reduction="mean")
    if not torch.allclose(manual, out.loss, rtol=1e-6, atol=1e-6):
        raise RuntimeError("loss mismatch")
    labels = input_ids.clone()
    labels[0, MASKED_LABEL_POSITIONS] = -100
    masked = model(input_ids, labels=labels, use_cache=False).loss
    tensors = {
        "input_ids": input_ids[0].to(torch.int64).contiguous(),
        "logits": logits,
    }
    json_part = {
        "text": FORWARD_TEXT,
        "input_ids": ids,
        "logits_shape": list(logits.shape),
        "loss": f32(out.loss),
        "loss_masked": f32(masked),
        "masked_label_positions": MASKED_LABEL_POSITIONS,
        "argmax": logits.argmax(-1).tolist(),
    }
    return json_part, tensors


def tokenization_reference(hf_tok, raw: Tokenizer, texts: list[str]) -> list[dict]:
    cases = []
    for text in texts:
        ids = hf_tok(text).input_ids
        plain = hf_tok(text, add_special_tokens=False).input_ids
        decoded = hf_tok.decode(ids, skip_special_tokens=False)
        # tokenizer.json alone (what Attune's JS tokenizer loads) must agree with transformers.
        if raw.encode(text).ids != ids or raw.encode(text, add_special_tokens=False).ids != plain:
            raise RuntimeError(f"tokenizers and transformers disagree on {text!r}")
        if raw.decode(ids, skip_special_tokens=False) != decoded:
            raise RuntimeError(f"tokenizers and transformers decode differently: {text!r}")
        cases.append({
            "text": text,
            "ids": ids,
            "ids_plain": plain,
            "decoded": decoded,
            "decoded_skip_special": hf_tok.decode(ids, skip_special_tokens=True),
            "tokens": hf_tok.convert_ids_to_tokens(ids),
        })
    return cases


def chat_reference(hf_tok, raw: Tokenizer, decoy: str | None) -> list[dict]:
    cases = []
    for messages, add_gen in CONVERSATIONS:
        rendered = hf_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_gen)
        ids = hf_tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_gen, return_dict=False)
        if decoy is not None and "DECOY" in rendered:
            raise RuntimeError("transformers used tokenizer_config.json's template over chat_template.jinja")
        if raw.encode(rendered, add_special_tokens=False).ids != list(ids):
            raise RuntimeError("chat ids are not the plain encoding of the rendered text")
        cases.append({"messages": messages, "add_generation_prompt": add_gen, "rendered": rendered, "ids": list(ids)})
    return cases


# --------------------------------------------------------------------------------------------
# Writing


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def save_model_folder(folder: Path, spec: dict, model, tok: Tokenizer, st: dict, gen_eos) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    kwargs = {"max_shard_size": spec["max_shard_size"]} if "max_shard_size" in spec else {}
    model.save_pretrained(folder, safe_serialization=True, **kwargs)
    if spec["config_style"] == "legacy":
        rewrite_config_legacy(folder / "config.json")
    tok.save(str(folder / "tokenizer.json"))
    template = st["chat_template"]
    if spec.get("chat_template_file"):
        (folder / "chat_template.jinja").write_text(QWEN3_TEMPLATE, encoding="utf-8")
        template = DECOY_TEMPLATE
    write_json(folder / "tokenizer_config.json", tokenizer_config(tok, st, template))
    gen = {"bos_token_id": model.config.bos_token_id, "eos_token_id": gen_eos}
    if model.config.pad_token_id is not None:
        gen["pad_token_id"] = model.config.pad_token_id
    gen["transformers_version"] = transformers.__version__
    (folder / "generation_config.json").unlink(missing_ok=True)
    write_json(folder / "generation_config.json", gen)


def build_fixture(spec: dict, out: Path, built: dict) -> None:
    name = spec["name"]
    folder = out / name
    base = dict(spec)
    if "same_as" in spec:  # same weights and tokenizer, other file layout / config style
        base = {**next(s for s in SPECS if s["name"] == spec["same_as"]), **spec}
    tok, st = build_tokenizer(base)
    vocab_real = tok.get_vocab_size(with_added_tokens=True)
    vocab = vocab_real
    if base.get("pad_vocab_to"):
        vocab = (vocab_real + base["pad_vocab_to"] - 1) // base["pad_vocab_to"] * base["pad_vocab_to"]
        if vocab == vocab_real:
            vocab += base["pad_vocab_to"]
    config, cls = make_config(base, vocab, tok, st)
    head_dim = base.get("head_dim", HIDDEN // HEADS)
    eos_ids = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    special = st["special_in_text"]

    seed = built[spec["same_as"]] if "same_as" in spec else base["seed"]
    for attempt in range(MAX_SEED_TRIES):
        torch.manual_seed(seed)
        model = cls(config).eval()
        init_weights(model, seed)
        save_model_folder(folder, base, model, tok, st, config.eos_token_id)
        del model
        # Everything below comes from the files on disk, loaded the ordinary way.
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
        hf_tok = AutoTokenizer.from_pretrained(folder)
        for key, value in model.state_dict().items():
            if value.dtype != torch.float32:
                raise RuntimeError(f"{key} is {value.dtype}")
        greedy, reasons = [], []
        for prompt in GREEDY_PROMPTS:
            result = greedy_reference(model, hf_tok, prompt, vocab_real, eos_ids)
            if isinstance(result, dict):
                greedy.append(result)
                break
            reasons.append(result)
        if greedy:
            break
        if "same_as" in spec:
            raise RuntimeError(f"{name}: the seed chosen for {spec['same_as']} no longer works")
        print(f"  {name}: seed {seed} rejected ({'; '.join(reasons)}); trying {seed + 1}")
        seed += 1
    else:
        raise RuntimeError(f"{name}: no seed in {MAX_SEED_TRIES} tries gives clear greedy margins")
    built[name] = seed

    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    rope = check_rope(model, base, head_dim)
    forward, tensors = forward_reference(model, hf_tok)
    reference = {
        "meta": {
            "format_version": FORMAT_VERSION,
            "script": SCRIPT,
            "name": name,
            "architecture": base["arch"],
            "seed": seed,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "dtype": "float32",
            "attn_implementation": "eager",
            "config_style": spec["config_style"],
            "tokenizer_style": base["tokenizer"],
            "vocab_size_config": vocab,
            "vocab_size_tokenizer": vocab_real,
            "head_dim": head_dim,
            "tied": base["tied"],
            "sharded": "max_shard_size" in spec,
            "chat_template_source": "chat_template.jinja" if base.get("chat_template_file") else "tokenizer_config.json",
            "bos_token_id": hf_tok.bos_token_id,
            "eos_token_ids": eos_ids,
            "add_bos": bool(hf_tok("a").input_ids[0] == hf_tok.bos_token_id) if hf_tok.bos_token_id is not None else False,
        },
        "rope": rope,
        "tokenization": tokenization_reference(hf_tok, raw, tokenization_texts(special)),
        "chat": chat_reference(hf_tok, raw, DECOY_TEMPLATE if base.get("chat_template_file") else None),
        "forward": forward,
        "greedy": greedy,
    }
    write_json(folder / "reference.json", reference)
    # One metadata key only: safetensors writes the metadata map in hash order, so two keys would
    # make the file differ from run to run.
    save_file(tensors, str(folder / "reference.safetensors"), metadata={"format": "pt"})
    for path in folder.iterdir():
        path.chmod(0o644)  # safetensors writes 0600


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixtures folder (default: %(default)s)")
    parser.add_argument("--only", nargs="*", help="build only these fixtures")
    args = parser.parse_args()

    torch.set_num_threads(1)  # summation order, hence every float, independent of the core count
    torch.use_deterministic_algorithms(True)
    names = [s["name"] for s in SPECS]
    wanted = args.only or names
    unknown = set(wanted) - set(names)
    if unknown:
        parser.error(f"unknown fixture(s) {sorted(unknown)}; known: {names}")
    if "llama_sharded" in wanted and "llama" not in wanted:
        wanted = ["llama", *wanted]
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, tokenizers {tokenizers.__version__}")
    built: dict[str, int] = {}
    total = 0
    for spec in SPECS:
        if spec["name"] not in wanted:
            continue
        build_fixture(spec, args.out, built)
        folder = args.out / spec["name"]
        size = folder_size(folder)
        total += size
        digest = hashlib.sha256()
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
        print(f"{spec['name']:14s} {size / 1024:8.1f} KiB  seed {built[spec['name']]}  sha256 {digest.hexdigest()[:16]}")
        for path in sorted(folder.iterdir()):
            print(f"    {path.name:40s} {path.stat().st_size / 1024:8.1f} KiB")
    print(f"total {total / 1024:.1f} KiB in {args.out}")
    # Independent cross-check: reference.md's formulas in NumPy must reproduce transformers' numbers.
    sys.path.insert(0, str(HERE))
    import verify_numpy

    for spec in SPECS:
        if spec["name"] in wanted:
            print("verify_numpy:", verify_numpy.verify(args.out / spec["name"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
