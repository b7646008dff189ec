#!/usr/bin/env python3
"""Golden training trajectories: LoRA / rsLoRA / DoRA / QLoRA / QDoRA trained by transformers + peft.

    bash scripts/python-env.sh && .venv/bin/python test/golden/make_training_golden.py [--out DIR]
        [--only CASE ...] [--sensitivity]

For each case this runs a few AdamW steps of peft on one of the tiny golden models
(test/golden/fixtures/llama, qwen3) on CPU in float32 with eager attention and deterministic
algorithms, from a saved initial adapter and on fixed token ids, and writes
test/golden/training/<case>/: case.json, batches.json, init_adapter/, trajectory.json,
final_adapter/, final_logits.safetensors, first_step_grads.safetensors. QLoRA/QDoRA cases train on
the base whose decoder linear weights are replaced by their NF4 + double-quant dequantized values
(nf4_reference.py: bitsandbytes' algorithm bit for bit). It also (re)writes training/nf4/, the NF4
fixture. See TRAINING.md for the formats; Attune's engine must reproduce these numbers.

The loss of an optimizer step is the one /work/shared/cli.md defines: the sum of the target-token
cross-entropies of all micro-batches of the step divided by the number of target tokens in the
step (transformers' own ForCausalLMLoss with num_items_in_batch = that count).

--sensitivity additionally trains mutated variants of every case (no weight decay, no clipping,
per-micro-batch mean loss, no warmup, undetached DoRA norm, alpha/r instead of alpha/sqrt(r),
unquantized or single-quantized base ...) and prints how far each lands from the golden numbers:
evidence that a test with the documented tolerances can fail. It writes nothing.

Deterministic: two runs give byte-identical files (same library versions; case.json records them).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
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

import numpy as np  # noqa: E402
import peft  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from peft.tuners.lora import LoraLayer  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from transformers.optimization import (  # noqa: E402
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
import nf4_reference  # noqa: E402

FORMAT_VERSION = 1
SCRIPT = "test/golden/make_training_golden.py"
DEFAULT_OUT = HERE / "training"
FIXTURES = HERE / "fixtures"
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
B_INIT_STD = 0.01  # B ~ B_INIT_STD·randn in the saved initial adapter (peft's own init has B = 0)
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
# A case is kept only if the same training in float64 lands this close to it (adapter, max rel): Adam
# turns gradients that are ~0 into full-size steps, so a gradient element that rounding can flip makes a
# fixture that a correct engine could miss; such an initial adapter is replaced (next seed).
WELL_CONDITIONED = 1e-4
MAX_ATTEMPTS = 20

# (prompt, completion): the prompt tokens are masked (-100), the completion tokens are targets.
TEXTS = [
    ("Question: What is the capital of France?", " Answer: Paris is the capital of France, and the café sells bread."),
    ("Write one line about the sea.", " The sea counts the waves and never gets tired of the wind."),
    ("How many legs does a spider have?", " A spider has eight legs. The dog does not mind the fox at all."),
    ("Tell me about the robot.", " Once upon a time there was a little robot who wanted to write poems."),
    ("Why is the sky blue?", " Sunlight scatters in the air, so the sky looks blue in the morning."),
    ("Describe training.", " Training a model means showing it many examples and slowly adjusting its weights."),
    ("Count something.", " Numbers matter too: 3 apples, 12 eggs, 2024 pages and 99 bottles."),
    ("What happened after the rain?", " When the rain stopped, the children ran outside to play in the garden."),
    ("Say something polite.", " She said, \"I'll be there at noon.\" He replied, \"We're already late, aren't we?\""),
    ("What do good tests do?", " Good tests compare every number with a reference, token by token, logit by logit."),
    ("What does the system prompt do?", " The system prompt tells the assistant how to behave; the user asks."),
    ("Describe the fox.", " The quick brown fox jumps over the lazy dog. The dog has seen the fox before."),
]

CASES = [
    {
        "name": "lora_llama",
        "covers": "plain LoRA on every decoder linear of a GQA Llama with llama3 rope scaling; constant lr; "
                  "decoupled weight decay; gradient clipping; batch of 2 equal-length sequences",
        "method": "lora", "base": "llama", "r": 8, "alpha": 16, "use_rslora": False, "use_dora": False,
        "targets": ALL_LINEAR, "lr": 5e-3, "schedule": "constant", "warmup_steps": 0, "weight_decay": 0.1,
        "max_grad_norm": 7.0, "batch_size": 2, "grad_accum": 1, "steps": 4, "seq_len": 32,
        "lengths": [20, 16, 24, 13], "seed": 1001,
    },
    {
        "name": "rslora_qwen3",
        "covers": "rsLoRA (scaling alpha/sqrt(r)) on q_proj, v_proj of Qwen3 (head_dim 32 != hidden/heads, q/k norms); "
                  "linear schedule with 1 warmup step (step 1 has lr 0); batch 1 x accumulation 2 with different "
                  "lengths and target counts per micro-batch; no clipping",
        "method": "lora", "base": "qwen3", "r": 4, "alpha": 8, "use_rslora": True, "use_dora": False,
        "targets": ["q_proj", "v_proj"], "lr": 5e-3, "schedule": "linear", "warmup_steps": 1, "weight_decay": 0.0,
        "max_grad_norm": 0.0, "batch_size": 1, "grad_accum": 2, "steps": 4, "seq_len": 32,
        "lengths": [18, 9, 25, 14, 11, 22, 16, 7], "seed": 1002,
    },
    {
        "name": "dora_llama",
        "covers": "DoRA on every decoder linear of Llama (magnitude trained, weight norm detached); cosine schedule "
                  "with 1 warmup step; batch 2 x accumulation 2; clipping",
        "method": "dora", "base": "llama", "r": 8, "alpha": 16, "use_rslora": False, "use_dora": True,
        "targets": ALL_LINEAR, "lr": 5e-3, "schedule": "cosine", "warmup_steps": 1, "weight_decay": 0.0,
        "max_grad_norm": 5.5, "batch_size": 2, "grad_accum": 2, "steps": 4, "seq_len": 32,
        "lengths": [16, 20, 12, 18, 22, 14, 10, 24], "seed": 1003,
    },
    {
        "name": "qlora_llama",
        "covers": "QLoRA: LoRA on the NF4 + double-quant dequantized Llama (q,k,v,o,gate,up,down replaced; "
                  "embeddings, norms, lm_head untouched); linear decay without warmup; batch 2",
        "method": "qlora", "base": "llama", "r": 8, "alpha": 16, "use_rslora": False, "use_dora": False,
        "targets": ALL_LINEAR, "lr": 5e-3, "schedule": "linear", "warmup_steps": 0, "weight_decay": 0.0,
        "max_grad_norm": 7.0, "batch_size": 2, "grad_accum": 1, "steps": 3, "seq_len": 32,
        "lengths": [18, 22, 14], "seed": 1004,
    },
    {
        "name": "qdora_qwen3",
        "covers": "QDoRA: DoRA on the NF4 + double-quant dequantized Qwen3 (magnitude = row norms of the "
                  "dequantized W + scaling·B@A); cosine without warmup; weight decay on A, B and the magnitude; "
                  "batch 1 x accumulation 2; no clipping",
        "method": "qdora", "base": "qwen3", "r": 8, "alpha": 16, "use_rslora": False, "use_dora": True,
        "targets": ALL_LINEAR, "lr": 1e-2, "schedule": "cosine", "warmup_steps": 0, "weight_decay": 0.1,
        "max_grad_norm": 0.0, "batch_size": 1, "grad_accum": 2, "steps": 3, "seq_len": 32,
        "lengths": [12, 20, 17, 9, 23, 15], "seed": 1005,
    },
]


# --------------------------------------------------------------------------------------------
# Small helpers


def f32(x) -> float:
    """A float32 value as the Python float with the same value (JSON round-trips it exactly)."""
    if isinstance(x, torch.Tensor):
        return float(x.detach().to(torch.float32).item())
    return float(np.float32(x))


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def write_batches(path: Path, batches: list[dict]) -> None:
    """batches.json with one row of ids / labels per line (json.dumps would give one number per line)."""
    head = {
        "format_version": FORMAT_VERSION,
        "note": "micro-batches in the order they are consumed; optimizer step k (1-based) uses micro-batches "
                "[(k-1)*grad_accum, k*grad_accum); labels are aligned with input_ids (the model shifts them: "
                "position t predicts labels[t+1]); -100 = not a target; targets = count of labels[:, 1:] != -100; "
                "no padding anywhere",
    }
    lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in head.items()]
    lines.append(' "micro_batches": [')
    for i, b in enumerate(batches):
        rows_ids = ",\n   ".join(json.dumps(r) for r in b["input_ids"])
        rows_lab = ",\n   ".join(json.dumps(r) for r in b["labels"])
        lines.append(f'  {{"targets": {b["targets"]},\n   "input_ids": [\n   {rows_ids}],\n'
                     f'   "labels": [\n   {rows_lab}]}}{"," if i + 1 < len(batches) else ""}')
    lines += [" ]", "}"]
    text = "\n".join(lines) + "\n"
    assert json.loads(text)["micro_batches"] == batches
    path.write_text(text, encoding="utf-8")


@torch.no_grad()
def manual_merge_logits(case: dict, adapter_dir: Path, ids: torch.Tensor) -> torch.Tensor:
    """reference.md's formulas applied by hand to the saved adapter files (no peft involved):
    W' = W + s·B@A (LoRA), W' = (m / ‖W + s·B@A‖_row)[:, None] · (W + s·B@A) (DoRA)."""
    base, _ = load_base(case)
    st = load_file(str(adapter_dir / "adapter_model.safetensors"))
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    s = cfg["lora_alpha"] / (math.sqrt(cfg["r"]) if cfg["use_rslora"] else cfg["r"])
    used = set()
    for name, module in base.named_modules():
        if name.split(".")[-1] in cfg["target_modules"] and isinstance(module, torch.nn.Linear):
            key = f"base_model.model.{name}"
            a, b = st[key + ".lora_A.weight"], st[key + ".lora_B.weight"]
            w = module.weight + s * (b @ a)
            used |= {key + ".lora_A.weight", key + ".lora_B.weight"}
            if cfg["use_dora"]:
                m = st[key + ".lora_magnitude_vector"]
                used.add(key + ".lora_magnitude_vector")
                w = (m / torch.linalg.norm(w, dim=1))[:, None] * w
            module.weight.copy_(w)
    assert used == set(st), sorted(set(st) - used)
    return logits_of(base, ids)


def sha256_tensor(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().contiguous().cpu().numpy().tobytes()).hexdigest()


def sha256_array(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def peft_key(param_name: str) -> str:
    """named_parameters() name -> the key peft writes to adapter_model.safetensors."""
    name = param_name.replace(".default.weight", ".weight")
    if name.endswith(".lora_magnitude_vector.weight"):
        name = name[: -len(".weight")]
    return name


# --------------------------------------------------------------------------------------------
# Models


def load_base(case: dict, quant: str | None = None):
    """The fixture model in float32 / eager; for qlora/qdora with its linear weights NF4-roundtripped.

    quant: None = by method; "none" = unquantized; "single" = NF4 without double quant."""
    path = FIXTURES / case["base"]
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, attn_implementation="eager")
    model.config.use_cache = False
    info = None
    if quant is None:
        quant = "double" if case["method"] in ("qlora", "qdora") else "none"
    if quant != "none":
        info = {}
        with torch.no_grad():
            for name, module in model.named_modules():
                if name.split(".")[-1] in ALL_LINEAR and isinstance(module, torch.nn.Linear):
                    w = module.weight.data
                    st = nf4_reference.quantize_nf4_double(w)
                    new = st["dequant"] if quant == "double" else st["dequant_single"]
                    assert new.dtype == w.dtype and new.shape == w.shape
                    flat = w.reshape(-1).numpy()
                    with np.errstate(divide="ignore", invalid="ignore"):
                        by_div = nf4_reference.nf4_index(
                            (flat / np.repeat(st["absmax"], nf4_reference.BLOCKSIZE)[: flat.size]).astype(np.float32))
                    info[name + ".weight"] = {
                        "shape": list(w.shape),
                        "packed_sha256": sha256_array(st["packed"]),
                        "absmax_q_sha256": sha256_array(st["absmax_q"]),
                        "absmax2": [f32(v) for v in st["absmax2"]],
                        "offset": f32(st["offset"]),
                        "offset_torch_float32_mean": f32(torch.from_numpy(st["absmax"].copy()).mean()),
                        "dequant_sha256": sha256_tensor(new),
                        "max_abs_change": f32((new - w).abs().max()),
                        "codes_differing_if_divided": int(np.sum(by_div != st["codes"])),
                    }
                    module.weight.data.copy_(new)
    model.eval()
    return model, info


def lora_config(case: dict, use_rslora: bool | None = None) -> LoraConfig:
    return LoraConfig(
        r=case["r"],
        lora_alpha=case["alpha"],
        lora_dropout=0.0,
        target_modules=list(case["targets"]),
        use_rslora=case["use_rslora"] if use_rslora is None else use_rslora,
        use_dora=case["use_dora"],
        bias="none",
        task_type="CAUSAL_LM",
        init_lora_weights=True,
    )


def lora_modules(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer) and "default" in m.lora_A]


def make_initial_adapter(case: dict, base, init_seed: int) -> tuple:
    """peft's own init with a fixed seed, then B := B_INIT_STD·randn and (DoRA) m := ‖W + s·B@A‖ rows."""
    torch.manual_seed(init_seed)
    model = get_peft_model(base, lora_config(case))
    gen = torch.Generator().manual_seed(init_seed + 7)
    with torch.no_grad():
        for name, module in lora_modules(model):
            a = module.lora_A["default"].weight
            b = module.lora_B["default"].weight
            assert torch.count_nonzero(b) == 0, "peft initialises B to zero"
            bound = 1.0 / math.sqrt(a.shape[1])
            assert a.abs().max() <= bound, "kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in))"
            b.copy_(torch.randn(b.shape, generator=gen) * B_INIT_STD)
            if case["use_dora"]:
                dora = module.lora_magnitude_vector["default"]
                before = dora.weight.detach().clone()
                w = module.get_base_layer().weight
                assert torch.allclose(before, torch.linalg.norm(w, dim=1)), "peft's m = row norms of W at B = 0"
                dora.update_layer(base_layer=module.get_base_layer(), lora_A=a, lora_B=b,
                                  scaling=module.scaling["default"])
                expect = torch.linalg.norm(w + module.scaling["default"] * (b @ a), dim=1)
                assert torch.allclose(dora.weight, expect, rtol=1e-6, atol=0)
    return model


def normalise_adapter_folder(folder: Path, case: dict) -> None:
    """peft writes a README.md model card and target_modules in set order: drop the one, sort the other."""
    readme = folder / "README.md"
    if readme.exists():
        readme.unlink()
    cfg_path = folder / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    if isinstance(cfg.get("target_modules"), list):
        cfg["target_modules"] = sorted(cfg["target_modules"])
    cfg["base_model_name_or_path"] = f"test/golden/fixtures/{case['base']}"
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    st = load_file(str(folder / "adapter_model.safetensors"))
    assert all(t.dtype == torch.float32 for t in st.values())


# --------------------------------------------------------------------------------------------
# Data


def make_batches(case: dict, tok) -> list[dict]:
    """Micro-batches in order: equal-length sequences inside a micro-batch (no padding)."""
    batches = []
    k = case["seed"] % len(TEXTS)
    mb_index = 0
    for length in case["lengths"]:
        ids_rows, label_rows = [], []
        for _ in range(case["batch_size"]):
            prompt, completion = TEXTS[k % len(TEXTS)]
            k += 1
            # the prompt (with the tokenizer's own specials, e.g. llama's BOS), cut short so that
            # every sequence keeps targets; its tokens are masked
            n_prompt = max(1, length // 4 + 2 * (len(ids_rows) % 2) - (mb_index % 2))
            p_ids = tok(prompt).input_ids[:n_prompt]
            c_ids = tok(completion, add_special_tokens=False).input_ids + [tok.eos_token_id]
            ids = (p_ids + c_ids)[:length]
            assert len(ids) == length, (case["name"], length, len(p_ids + c_ids))
            labels = [-100] * min(len(p_ids), length) + ids[len(p_ids):]
            if mb_index % 3 == 2 and length > 12:
                # a masked span inside the targets too (like a user turn between assistant turns)
                for j in range(len(p_ids) + 3, min(len(p_ids) + 6, length)):
                    labels[j] = -100
            ids_rows.append(ids)
            label_rows.append(labels)
        batches.append({"input_ids": ids_rows, "labels": label_rows})
        mb_index += 1
    for b in batches:
        b["targets"] = sum(1 for row in b["labels"] for v in row[1:] if v != -100)
        assert b["targets"] > 0
    assert len(batches) == case["steps"] * case["grad_accum"]
    return batches


# --------------------------------------------------------------------------------------------
# Training


def make_scheduler(opt, case: dict):
    kind, warm, total = case["schedule"], case["warmup_steps"], case["steps"]
    if kind == "constant":
        return get_constant_schedule_with_warmup(opt, num_warmup_steps=warm)
    if kind == "linear":
        return get_linear_schedule_with_warmup(opt, num_warmup_steps=warm, num_training_steps=total)
    if kind == "cosine":
        return get_cosine_schedule_with_warmup(opt, num_warmup_steps=warm, num_training_steps=total)
    raise ValueError(kind)


def expected_lr(case: dict, step0: int) -> float:
    """The schedule in closed form (step0 = 0-based optimizer step): transformers' lambdas."""
    warm, total, base = case["warmup_steps"], case["steps"], case["lr"]
    if step0 < warm:
        return base * step0 / max(1, warm)
    if case["schedule"] == "constant":
        return base
    if case["schedule"] == "linear":
        return base * max(0.0, (total - step0) / max(1, total - warm))
    progress = (step0 - warm) / max(1, total - warm)
    return base * max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


@contextlib.contextmanager
def undetached_dora_norm():
    """A mutation for --sensitivity: DoRA without detaching the weight norm."""
    from peft.tuners.lora import dora

    orig = dora.DoraLinearLayer.forward

    def forward(self, x, *, lora_A, lora_B, scaling, base_layer, base_result=None, adapter_name="default"):
        x_eye = torch.eye(lora_A.weight.shape[1], device=lora_A.weight.device, dtype=lora_A.weight.dtype)
        lora_weight = lora_B(lora_A(x_eye)).T.to(x.dtype)
        weight = base_layer.weight.to(x.dtype)
        weight_norm = torch.linalg.norm(weight + scaling * lora_weight, dim=1)  # not detached
        mag_norm_scale = (self.weight / weight_norm).view(1, -1)
        lora_result = lora_B(lora_A(x))
        if base_result is None:
            base_result = torch.nn.functional.linear(x, weight)
        return (mag_norm_scale - 1) * base_result + mag_norm_scale * lora_result * scaling

    dora.DoraLinearLayer.forward = forward
    try:
        yield
    finally:
        dora.DoraLinearLayer.forward = orig


def step_loss_manual(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
    lg = logits[:, :-1, :].reshape(-1, logits.shape[-1]).float()
    lb = labels[:, 1:].reshape(-1)
    ce = torch.nn.functional.cross_entropy(lg, lb, ignore_index=-100, reduction="sum")
    return float(ce), int((lb != -100).sum())


def make_optimizer(case: dict, named: list):
    params = [p for _, p in named]
    eps = case.get("adam_eps", ADAM_EPS)
    kind = case.get("optimizer", "adamw")
    if kind == "adam_l2":  # mutation: L2 added to the gradient (torch.optim.Adam's weight_decay)
        return torch.optim.Adam(params, lr=case["lr"], betas=ADAM_BETAS, eps=eps,
                                weight_decay=case["weight_decay"], foreach=False)
    if kind == "adamw_no_decay_on_magnitude":  # mutation
        mags = [p for n, p in named if "lora_magnitude_vector" in n]
        rest = [p for n, p in named if "lora_magnitude_vector" not in n]
        groups = [{"params": rest, "weight_decay": case["weight_decay"]}, {"params": mags, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=case["lr"], betas=ADAM_BETAS, eps=eps, foreach=False, fused=False)
    return torch.optim.AdamW(params, lr=case["lr"], betas=ADAM_BETAS, eps=eps,
                             weight_decay=case["weight_decay"], foreach=False, fused=False)


def per_sequence_mean_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mutation: the mean over sequences of each sequence's mean cross-entropy."""
    per_row = []
    for i in range(labels.shape[0]):
        lb = labels[i, 1:]
        ce = torch.nn.functional.cross_entropy(logits[i, :-1].float(), lb, ignore_index=-100, reduction="sum")
        per_row.append(ce / (lb != -100).sum())
    return torch.stack(per_row).mean()


def train(case: dict, model, batches: list[dict], *, loss_mode: str = "golden", record_grads: bool = True,
          grad_noise: float = 0.0):
    """AdamW steps of `model` (a PeftModel whose adapter is the initial one); returns the trajectory.

    loss_mode "golden" is cli.md's loss; "mean_of_means" and "per_sequence_mean" are mutations.
    grad_noise: relative noise put on every gradient (to see what rounding-level differences do)."""
    model.train()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    opt = make_optimizer(case, named)
    noise_gen = torch.Generator().manual_seed(99)
    sched = make_scheduler(opt, case)
    accum = case["grad_accum"]
    steps = []
    first_grads = {}
    for step in range(case["steps"]):
        mbs = batches[step * accum:(step + 1) * accum]
        n_targets = sum(mb["targets"] for mb in mbs)
        lr = opt.param_groups[0]["lr"]
        assert abs(lr - expected_lr(case, step)) <= 1e-15 * max(1.0, case["lr"]), (lr, expected_lr(case, step))
        loss_sum = 0.0
        micro = []
        for mb in mbs:
            ids = torch.tensor(mb["input_ids"], dtype=torch.long)
            labels = torch.tensor(mb["labels"], dtype=torch.long)
            if loss_mode == "mean_of_means":  # the classic accumulation mistake: mean per micro-batch, averaged
                out = model(input_ids=ids, labels=labels, use_cache=False)
                loss = out.loss / accum
            elif loss_mode == "per_sequence_mean":
                out = model(input_ids=ids, use_cache=False)
                loss = per_sequence_mean_loss(out.logits, labels) / accum
            else:
                out = model(input_ids=ids, labels=labels, num_items_in_batch=n_targets, use_cache=False)
                loss = out.loss
            loss.backward()
            ce_sum, count = step_loss_manual(out.logits.detach(), labels)
            assert count == mb["targets"]
            if loss_mode == "golden":
                got = float(out.loss.detach())
                assert abs(got * n_targets - ce_sum) <= 1e-5 * max(1.0, ce_sum), (got, ce_sum)
            loss_sum += float(loss.detach())
            micro.append({"ce_sum": ce_sum, "targets": count})
        if step == 0 and record_grads:
            first_grads = {peft_key(n): p.grad.detach().clone() for n, p in named}
        if grad_noise:
            with torch.no_grad():
                for p in params:
                    p.grad.mul_(1 + grad_noise * torch.randn(p.grad.shape, generator=noise_gen, dtype=p.grad.dtype))
        if case["max_grad_norm"] > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, case["max_grad_norm"], foreach=False)
        else:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params], foreach=False)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            param_norm = torch.nn.utils.get_total_norm([p.detach() for p in params], foreach=False)
        steps.append({
            "step": step + 1,
            "lr": lr,
            "loss": loss_sum,
            "loss_ce_sum_over_targets": sum(m["ce_sum"] for m in micro) / n_targets,
            "grad_norm": f32(grad_norm),
            "clipped": bool(case["max_grad_norm"] > 0 and float(grad_norm) > case["max_grad_norm"]),
            "targets": n_targets,
            "micro_batches": micro,
            "param_norm_after": f32(param_norm),
        })
    model.eval()
    return steps, first_grads


@torch.no_grad()
def logits_of(model, ids: torch.Tensor) -> torch.Tensor:
    model.eval()
    return model(input_ids=ids, use_cache=False).logits.detach().float().clone()


@torch.no_grad()
def first_step_loss(model, batches: list[dict], accum: int) -> float:
    mbs = batches[:accum]
    n = sum(mb["targets"] for mb in mbs)
    total = 0.0
    for mb in mbs:
        out = model(input_ids=torch.tensor(mb["input_ids"]), labels=torch.tensor(mb["labels"]),
                    num_items_in_batch=n, use_cache=False)
        total += float(out.loss)
    return total


def adapter_tensors(model) -> dict[str, torch.Tensor]:
    return {peft_key(n): p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def rel_diff(a: dict, b: dict) -> float:
    """max over tensors of max|a - b| / max|b| (elementwise, scaled by the tensor's largest value)."""
    return max(float((a[k].double() - b[k].double()).abs().max() / b[k].double().abs().max()) for k in b)


def rel_fro(a: dict, b: dict) -> float:
    """max over tensors of ‖a - b‖₂ / ‖b‖₂ (Frobenius, per tensor)."""
    return max(float(torch.linalg.norm(a[k].double() - b[k].double()) / torch.linalg.norm(b[k].double())) for k in b)


def compare(steps, tensors, golden_steps, golden_tensors) -> dict:
    return {
        "adapter_max_rel": rel_diff(tensors, golden_tensors),
        "adapter_fro_rel": rel_fro(tensors, golden_tensors),
        "loss_max_abs_diff": max(abs(a["loss"] - b["loss"]) for a, b in zip(steps, golden_steps)),
        "grad_norm_max_rel": max(abs(a["grad_norm"] - b["grad_norm"]) / b["grad_norm"]
                                 for a, b in zip(steps, golden_steps)),
    }


# --------------------------------------------------------------------------------------------
# One case


def run_case(case: dict, out_root: Path) -> dict:
    """Train the case; retry with another initial adapter while the fixture is ill-conditioned."""
    for attempt in range(MAX_ATTEMPTS):
        res = run_case_once(case, out_root, case["seed"] + 100 * attempt, attempt)
        f64 = res["checks"]["float64_run_vs_golden"]
        if f64["adapter_max_rel"] <= WELL_CONDITIONED and f64["loss_max_abs_diff"] <= 1e-5:
            return res
        print(f"    {case['name']}: attempt {attempt}: float64 rerun lands {f64['adapter_max_rel']:.2e} away "
              f"(> {WELL_CONDITIONED}): another initial adapter")
    raise SystemExit(f"{case['name']}: no well-conditioned initial adapter in {MAX_ATTEMPTS} attempts")


def run_case_once(case: dict, out_root: Path, init_seed: int, attempt: int) -> dict:
    folder = out_root / case["name"]
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    tok = AutoTokenizer.from_pretrained(str(FIXTURES / case["base"]))
    batches = make_batches(case, tok)

    base, nf4_info = load_base(case)
    model = make_initial_adapter(case, base, init_seed)
    init_dir = folder / "init_adapter"
    model.save_pretrained(str(init_dir))
    normalise_adapter_folder(init_dir, case)
    init_tensors = adapter_tensors(model)

    steps, first_grads = train(case, model, batches)

    final_dir = folder / "final_adapter"
    model.save_pretrained(str(final_dir))
    normalise_adapter_folder(final_dir, case)
    final_tensors = adapter_tensors(model)
    first_ids = torch.tensor(batches[0]["input_ids"], dtype=torch.long)
    logits_trained = logits_of(model, first_ids)

    # --- verification with peft itself -----------------------------------------------------
    checks = {}
    saved = load_file(str(final_dir / "adapter_model.safetensors"))
    assert set(saved) == set(final_tensors), sorted(set(saved) ^ set(final_tensors))
    assert all(torch.equal(saved[k], final_tensors[k]) for k in saved)
    base2, _ = load_base(case)
    loaded = PeftModel.from_pretrained(base2, str(final_dir))
    logits_loaded = logits_of(loaded, first_ids)
    checks["reload_final_logits_max_abs_diff"] = f32((logits_loaded - logits_trained).abs().max())
    assert checks["reload_final_logits_max_abs_diff"] <= 1e-6
    merged = loaded.merge_and_unload()
    logits_merged = logits_of(merged, first_ids)
    checks["merged_vs_adapter_logits_max_abs_diff"] = f32((logits_merged - logits_loaded).abs().max())
    assert checks["merged_vs_adapter_logits_max_abs_diff"] <= 1e-4
    logits_manual = manual_merge_logits(case, final_dir, first_ids)
    checks["manual_merge_vs_peft_logits_max_abs_diff"] = f32((logits_manual - logits_loaded).abs().max())
    assert checks["manual_merge_vs_peft_logits_max_abs_diff"] <= 1e-4
    base3, _ = load_base(case)
    init_loaded = PeftModel.from_pretrained(base3, str(init_dir))
    loss0 = first_step_loss(init_loaded, batches, case["grad_accum"])
    checks["reload_init_step1_loss_abs_diff"] = abs(loss0 - steps[0]["loss"])
    assert checks["reload_init_step1_loss_abs_diff"] <= 1e-6
    base4, _ = load_base(case, quant="none")
    checks["unquantized_base_no_adapter_step1_loss"] = first_step_loss(base4, batches, case["grad_accum"])
    checks["adapter_moved_max_rel"] = rel_diff(init_tensors, final_tensors)
    checks["adapter_moved_fro_rel"] = rel_fro(init_tensors, final_tensors)
    # The same training in float64 (a different, more exact, correct implementation): how far a correct
    # engine may land. (transformers' loss still takes the cross-entropy of float32-cast logits.)
    steps64, tensors64 = mutated_run(case, batches, "float64_run (benign)", init_dir)
    checks["float64_run_vs_golden"] = compare(steps64, tensors64, steps, final_tensors)
    checks["loss_first_last"] = [steps[0]["loss"], steps[-1]["loss"]]

    save_file({"input_ids": first_ids, "logits": logits_loaded.contiguous()},
              str(folder / "final_logits.safetensors"), metadata={"format": "pt"})
    save_file({k: v.contiguous() for k, v in sorted(first_grads.items())},
              str(folder / "first_step_grads.safetensors"), metadata={"format": "pt"})

    # --- files -----------------------------------------------------------------------------
    write_batches(folder / "batches.json", batches)
    write_json(folder / "trajectory.json", {
        "format_version": FORMAT_VERSION,
        "loss_definition": "sum of target-token cross-entropies over the step's micro-batches / targets in the step",
        "steps": steps,
        "checks": checks,
    })
    scaling = case["alpha"] / (math.sqrt(case["r"]) if case["use_rslora"] else case["r"])
    doc = {
        "format_version": FORMAT_VERSION,
        "script": SCRIPT,
        "name": case["name"],
        "covers": case["covers"],
        "method": case["method"],
        "base": case["base"],
        "base_path": f"test/golden/fixtures/{case['base']}",
        "base_quantization": (
            {"kind": "nf4", "double_quant": True, "blocksize": nf4_reference.BLOCKSIZE,
             "nested_blocksize": nf4_reference.NESTED_BLOCKSIZE,
             "modules": ALL_LINEAR, "dtype_after_dequant": "float32",
             "how": "every decoder linear weight (q,k,v,o,gate,up,down) replaced by "
                    "nf4_reference.quantize_nf4_double(W)['dequant']; embeddings, norms, lm_head untouched",
             "weights": nf4_info}
            if nf4_info is not None else None
        ),
        "r": case["r"],
        "alpha": case["alpha"],
        "scaling": scaling,
        "use_rslora": case["use_rslora"],
        "use_dora": case["use_dora"],
        "dropout": 0.0,
        "target_modules": list(case["targets"]),
        "all_linear": sorted(case["targets"]) == sorted(ALL_LINEAR),
        "lr": case["lr"],
        "schedule": case["schedule"],
        "warmup_steps": case["warmup_steps"],
        "weight_decay": case["weight_decay"],
        "weight_decay_applies_to": "every trainable tensor (lora_A, lora_B, lora_magnitude_vector)",
        "max_grad_norm": case["max_grad_norm"],
        "optimizer": {"name": "torch.optim.AdamW", "betas": list(ADAM_BETAS), "eps": ADAM_EPS,
                      "amsgrad": False, "foreach": False},
        "batch_size": case["batch_size"],
        "grad_accum": case["grad_accum"],
        "steps": case["steps"],
        "seq_len": case["seq_len"],
        "init": {
            "seed": init_seed,
            "attempt": attempt,
            "a": "peft's init: kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)) after torch.manual_seed(seed)",
            "b": f"NOT peft's zeros: {B_INIT_STD}*randn (torch.Generator seed {init_seed + 7}), so that the "
                 "first steps are not degenerate",
            "magnitude": ("recomputed after B: row norms ||W + scaling*B@A||_2 over the input dim "
                          "(peft's DoraLinearLayer.update_layer), so init_adapter is a consistent peft state"
                          if case["use_dora"] else None),
        },
        "trainable_tensors": len(final_tensors),
        "trainable_params": int(sum(t.numel() for t in final_tensors.values())),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__, "numpy": np.__version__},
        "precision": "float32 everywhere, eager attention, CPU, torch.use_deterministic_algorithms(True), 1 thread",
    }
    write_json(folder / "case.json", doc)
    return {"checks": checks, "steps": steps, "final": final_tensors, "init": init_tensors,
            "batches": batches, "logits": logits_loaded, "folder": folder}


# --------------------------------------------------------------------------------------------
# Sensitivity (--sensitivity): mutated runs vs the golden one


def mutated_run(case: dict, batches, mutation: str, init_dir: Path):
    c = copy.deepcopy(case)
    quant = None
    use_rslora = None
    loss_mode = "golden"
    grad_noise = 0.0
    float64 = False
    ctx = contextlib.nullcontext()
    if mutation == "weight_decay_0":
        c["weight_decay"] = 0.0
    elif mutation == "adam_l2_not_decoupled":
        c["optimizer"] = "adam_l2"
    elif mutation == "no_decay_on_magnitude":
        c["optimizer"] = "adamw_no_decay_on_magnitude"
    elif mutation == "no_clipping":
        c["max_grad_norm"] = 0.0
    elif mutation in ("mean_of_micro_batch_means", "per_sequence_mean"):
        loss_mode = {"mean_of_micro_batch_means": "mean_of_means"}.get(mutation, mutation)
    elif mutation == "no_warmup":
        c["warmup_steps"] = 0
    elif mutation == "constant_schedule":
        c["schedule"] = "constant"
    elif mutation == "scaling_alpha_over_r":
        use_rslora = False
    elif mutation == "dora_norm_not_detached":
        ctx = undetached_dora_norm()
    elif mutation == "unquantized_base":
        quant = "none"
    elif mutation == "single_quant_base":
        quant = "single"
    elif mutation == "adam_eps_1e-6":
        c["adam_eps"] = 1e-6
    elif mutation == "grad_noise_1e-6 (benign)":
        grad_noise = 1e-6
    elif mutation == "float64_run (benign)":
        float64 = True
    else:
        raise ValueError(mutation)
    base, _ = load_base(c, quant=quant)
    # the same initial adapter as the golden run (loaded, so the base difference does not leak in)
    model = PeftModel.from_pretrained(base, str(init_dir), is_trainable=True)
    if float64:
        model = model.double()
    if use_rslora is not None:
        for _, module in lora_modules(model):
            module.scaling["default"] = c["alpha"] / c["r"]
    with ctx:
        steps, _ = train(c, model, batches, loss_mode=loss_mode, record_grads=False, grad_noise=grad_noise)
    return steps, adapter_tensors(model)


def sensitivity(case: dict, golden: dict) -> list[str]:
    muts = ["grad_noise_1e-6 (benign)", "adam_eps_1e-6"]
    if case["grad_accum"] > 1:
        muts.append("mean_of_micro_batch_means")
    if case["batch_size"] > 1:
        muts.append("per_sequence_mean")
    if case["weight_decay"] > 0:
        muts += ["weight_decay_0", "adam_l2_not_decoupled"]
        if case["use_dora"]:
            muts.append("no_decay_on_magnitude")
    if case["max_grad_norm"] > 0:
        muts.append("no_clipping")
    if case["warmup_steps"] > 0:
        muts.append("no_warmup")
    if case["schedule"] != "constant":
        muts.append("constant_schedule")
    if case["use_rslora"]:
        muts.append("scaling_alpha_over_r")
    if case["use_dora"]:
        muts.append("dora_norm_not_detached")
    if case["method"] in ("qlora", "qdora"):
        muts += ["unquantized_base", "single_quant_base"]
    init_dir = golden["folder"] / "init_adapter"
    moved = compare(golden["steps"], golden["init"], golden["steps"], golden["final"])
    lines = [f"{case['name']}: init vs final adapter: max rel {moved['adapter_max_rel']:.3e}, "
             f"fro rel {moved['adapter_fro_rel']:.3e}"]
    for m in muts:
        steps, tensors = mutated_run(case, golden["batches"], m, init_dir)
        d = compare(steps, tensors, golden["steps"], golden["final"])
        lines.append(f"  {m:28s} adapter max rel {d['adapter_max_rel']:.2e}  fro rel {d['adapter_fro_rel']:.2e}  "
                     f"max|dloss| {d['loss_max_abs_diff']:.2e}  grad_norm rel {d['grad_norm_max_rel']:.2e}")
    return lines


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--only", nargs="*", help="build only these cases")
    parser.add_argument("--sensitivity", action="store_true", help="also print how far mutated runs land")
    args = parser.parse_args()

    torch.set_num_threads(1)  # summation order, hence every float, independent of the core count
    torch.use_deterministic_algorithms(True)
    transformers.utils.logging.disable_progress_bar()
    names = [c["name"] for c in CASES]
    wanted = args.only or names
    unknown = set(wanted) - set(names)
    if unknown:
        parser.error(f"unknown case(s) {sorted(unknown)}; known: {names}")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")

    nf4_doc = nf4_reference.write_fixture(args.out / "nf4")
    print(f"nf4: {len(nf4_doc['tensors'])} tensors, {folder_size(args.out / 'nf4') / 1024:.1f} KiB")

    report = []
    for case in CASES:
        if case["name"] not in wanted:
            continue
        res = run_case(case, args.out)
        folder = args.out / case["name"]
        print(f"{case['name']:14s} {folder_size(folder) / 1024:7.1f} KiB  checks {json.dumps(res['checks'])}")
        for s in res["steps"]:
            print(f"    step {s['step']}  lr {s['lr']:.6g}  loss {s['loss']:.7f}  grad_norm {s['grad_norm']:.6f}"
                  f"{' (clipped)' if s['clipped'] else ''}  targets {s['targets']}")
        if args.sensitivity:
            report += sensitivity(case, res)
    print(f"total {folder_size(args.out) / 1024:.1f} KiB in {args.out}")
    if report:
        print("\n".join(["sensitivity (mutated run vs golden):", *report]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
