#!/usr/bin/env python3
"""PEFT interop check: Attune's adapters in peft, and peft's adapters in Attune.

    .venv/bin/python test/interop/check_peft.py [--build auto|always|never] [--keep]
    bash scripts/interop-check.sh        # the same, after making the venv (or skipping without it)

Drives the real `attune` command (bin/attune.js, the built CLI and native engine) on the tiny golden
model `test/golden/fixtures/llama` and checks, with transformers + peft themselves:

A. Attune-trained adapters in peft (LoRA and DoRA, `attune train --steps 3 --rank 4 --alpha 8
   --lr 5e-3 --dropout 0 --no-shuffle` on a small text JSONL written here):
   - `PeftModel.from_pretrained(base, adapter)` loads with no warning, `load_adapter` reports no
     missing or unexpected keys, and peft's state dict of the loaded adapter is exactly the file
     (same keys, same bits): every tensor was taken, none was left out;
   - the config says what was asked (r, alpha, use_dora, the 7 linear targets);
   - the adapter was trained (every lora_B non-zero) and changes the logits;
   - peft's `merge_and_unload()` weights equal reference.md's merge formula applied in NumPy
     (float64) to the saved tensors and the base weights, within 1e-5: W + s·B@A, DoRA
     (m / ‖W + s·B@A‖_row) · (W + s·B@A); untargeted weights unchanged; the merged model's logits
     equal the adapter model's;
   - the adapter's effect through the loss: Attune's step-1 loss of a run that starts from the
     adapter (`--init-adapter`, `--lr 1e-12`: the step-1 loss is computed before any update, with
     the adapter as saved) equals peft's mean cross-entropy on the same record, within 1e-4.
     (`attune eval` has no `--adapter` yet; this is how Attune's forward with an adapter is read.)
B. PEFT-made adapters in Attune (`test/fixtures/peft/llama-lora-qv`, `…/llama-dora-all`, and a
   DoRA adapter made here by peft whose magnitude is not ‖W‖, so that a reader that dropped the
   magnitude and re-initialised it from W would be caught): `attune train --init-adapter DIR
   --steps 1 --lr 1e-12` must accept it and write an adapter with the same keys, shapes and
   settings (r, alpha, use_dora, use_rslora, targets) whose tensors equal the input within 1e-6
   relative (per tensor, max|Δ| / max|input|; an AdamW step of 1e-12 moves a value by ≤ 1e-12):
   the load path read every tensor by its PEFT name. Attune's step-1 loss (the input adapter's
   forward) must equal peft's within 1e-4, and the written adapter must load back into peft
   cleanly.

Prints a PASS/FAIL table; exits 1 when any check fails (2 when it cannot run at all).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "test" / "golden" / "fixtures" / "llama"
PEFT_FIXTURES = ROOT / "test" / "fixtures" / "peft"
LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

MERGE_TOL = 1e-5  # max |peft merged − NumPy formula| (weights, absolute)
LOSS_TOL = 1e-4  # |Attune loss − peft loss| (TRAINING.md's step-loss tolerance)
ROUNDTRIP_TOL = 1e-6  # per tensor max|Δ| / max|input| after a 1e-12 step
LOGITS_MERGED_TOL = 1e-4  # merged model vs adapter model logits (logits ~10)
LOGITS_MOVED_MIN = 1e-3  # the trained adapter must move the logits at least this much

TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "hello world, this is a small interop test",
    "attune trains adapters that peft can load",
    "one two three four five six seven eight nine",
    "a stitch in time saves nine, they say",
    "low rank adapters change a model a little",
]
PROBE_TEXT = "peft and attune should agree on every logit"


# --------------------------------------------------------------------------------------------
# Results


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, bool]] = []

    def add(self, case: str, check: str, ok: bool, detail: str = "") -> bool:
        self.rows.append((case, check, detail, bool(ok)))
        return bool(ok)

    def crash(self, case: str, check: str, error: BaseException) -> None:
        first = str(error).strip().splitlines()
        self.add(case, check, False, f"{type(error).__name__}: {first[0] if first else ''}"[:200])

    @property
    def failed(self) -> int:
        return sum(1 for row in self.rows if not row[3])

    def print(self) -> None:
        w_case = max(len("case"), *(len(r[0]) for r in self.rows))
        w_check = max(len("check"), *(len(r[1]) for r in self.rows))
        print()
        print(f"{'case':{w_case}}  {'check':{w_check}}  result  detail")
        print(f"{'-' * w_case}  {'-' * w_check}  ------  ------")
        for case, check, detail, ok in self.rows:
            print(f"{case:{w_case}}  {check:{w_check}}  {'PASS' if ok else 'FAIL':6}  {detail}")
        print()
        total = len(self.rows)
        if self.failed:
            print(f"interop check: FAIL ({self.failed} of {total} checks failed)")
        else:
            print(f"interop check: PASS ({total} checks)")


# --------------------------------------------------------------------------------------------
# Building and running Attune


def _newest_mtime(paths: list[Path]) -> float:
    newest = 0.0
    for p in paths:
        if p.is_file():
            newest = max(newest, p.stat().st_mtime)
        elif p.is_dir():
            for f in p.rglob("*"):
                if f.is_file():
                    newest = max(newest, f.stat().st_mtime)
    return newest


def _run_build(command: list[str]) -> None:
    print(f"interop: building: {' '.join(command)}", flush=True)
    res = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if res.returncode != 0:
        sys.stdout.write(res.stdout[-4000:])
        raise SystemExit(f"interop: the build failed ({' '.join(command)}, exit {res.returncode})")


def ensure_built(mode: str) -> None:
    """`auto`: build what is missing or older than its sources; `always`; `never`."""
    if mode == "never":
        return
    addon = ROOT / "native" / "build" / "Release" / "attune_engine.node"
    native_sources = [ROOT / "native" / d for d in ("src", "addon", "include")] + [ROOT / "native" / "CMakeLists.txt"]
    if mode == "always" or not addon.exists() or addon.stat().st_mtime < _newest_mtime(native_sources):
        _run_build(["node", "scripts/build-native.mjs"])
    cli = ROOT / "out" / "main" / "cli.js"
    ts_sources = [ROOT / "src-main", ROOT / "electron.vite.config.ts", ROOT / "package.json"]
    if mode == "always" or not cli.exists() or cli.stat().st_mtime < _newest_mtime(ts_sources):
        _run_build(["npx", "electron-vite", "build"])


def attune(args: list[str], home: Path) -> subprocess.CompletedProcess:
    command = ["node", str(ROOT / "bin" / "attune.js"), *args, "--home", str(home)]
    return subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)


def train(home: Path, data: Path, out: Path, method: str, extra: list[str]) -> subprocess.CompletedProcess:
    return attune(["train", "--model", str(BASE), "--data", str(data), "--method", method, "--out", str(out), *extra],
                  home)


def read_metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _tail(res: subprocess.CompletedProcess) -> str:
    text = (res.stderr or "").strip() or (res.stdout or "").strip()
    return text.splitlines()[-1][:200] if text else ""


# --------------------------------------------------------------------------------------------
# peft side

torch = None  # imported in main(), after the argument parsing (so --help works without torch)


def _imports():
    global torch
    import peft  # noqa: F401
    import torch as _torch
    import transformers

    torch = _torch
    torch.set_num_threads(1)
    transformers.utils.logging.disable_progress_bar()
    return peft, transformers


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


@contextlib.contextmanager
def captured_warnings():
    """Python warnings and WARNING+ log records of transformers / peft, and anything printed."""
    handler = _Capture()
    loggers = [logging.getLogger(name) for name in ("transformers", "peft")]
    for lg in loggers:
        lg.addHandler(handler)
    out, err = io.StringIO(), io.StringIO()
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                yield found
        finally:
            for lg in loggers:
                lg.removeHandler(handler)
    found += [f"{w.category.__name__}: {w.message}" for w in caught]
    found += handler.messages
    found += [f"printed: {line}" for line in (out.getvalue() + err.getvalue()).splitlines() if line.strip()]


def load_base():
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(BASE), dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return model


def load_peft(adapter: Path):
    """(PeftModel, warnings) with the base loaded fresh; the base's own loading is not counted."""
    from peft import PeftModel

    base = load_base()
    with captured_warnings() as found:
        model = PeftModel.from_pretrained(base, str(adapter))
    model.eval()
    return model, found


def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(BASE))


def encode_text(tok, text: str) -> list[int]:
    """cli.md's `text` format: the tokenizer's own special tokens, then EOS unless already last."""
    ids = list(tok(text)["input_ids"])
    if not ids or ids[-1] != tok.eos_token_id:
        ids.append(tok.eos_token_id)
    return ids


def mean_ce(model, ids: list[int]) -> float:
    """Mean cross-entropy over every next-token target (HF labels = input_ids, shifted inside)."""
    x = torch.tensor([ids])
    with torch.no_grad():
        return float(model(input_ids=x, labels=x).loss)


def logits(model, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].double().numpy()


def read_tensors(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def read_config(folder: Path) -> dict:
    return json.loads((folder / "adapter_config.json").read_text())


def target_names(config: dict) -> set[str]:
    """Target modules as module names (peft also accepts full module paths, as llama-dora-all has)."""
    targets = config["target_modules"]
    if isinstance(targets, str):
        return {targets}
    return {t.split(".")[-1] for t in targets}


def scaling(config: dict) -> float:
    r, alpha = config["r"], config["lora_alpha"]
    return alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r


def check_loads_cleanly(rep: Report, case: str, folder: Path) -> object | None:
    """PeftModel.from_pretrained with no warnings, no missing/unexpected keys, the file exactly."""
    from peft import get_peft_model_state_dict

    try:
        model, found = load_peft(folder)
    except Exception as error:  # noqa: BLE001
        rep.crash(case, "PeftModel.from_pretrained", error)
        return None
    rep.add(case, "PeftModel.from_pretrained: no warnings", not found,
            "none" if not found else f"{len(found)}: {found[0][:160]}")
    with captured_warnings():
        probe = model.load_adapter(str(folder), adapter_name="probe")
    rep.add(case, "load_adapter: no missing/unexpected keys", not probe.missing_keys and not probe.unexpected_keys,
            f"missing {len(probe.missing_keys)}, unexpected {len(probe.unexpected_keys)}"
            + (f" (e.g. {(probe.missing_keys or probe.unexpected_keys)[0]})"
               if probe.missing_keys or probe.unexpected_keys else ""))
    model.delete_adapter("probe")
    model.set_adapter("default")
    file = read_tensors(folder)
    state = get_peft_model_state_dict(model, adapter_name="default")
    loaded = {k: v.detach().float().numpy() for k, v in state.items()}
    only_file = sorted(set(file) - set(loaded))
    only_model = sorted(set(loaded) - set(file))
    differing = [k for k in sorted(set(file) & set(loaded))
                 if file[k].shape != loaded[k].shape
                 or not np.array_equal(file[k].view(np.uint32), loaded[k].view(np.uint32))]
    rep.add(case, "peft's adapter state = the file, bit for bit",
            not only_file and not only_model and not differing,
            f"{len(file)} tensors; only in file {len(only_file)}, only in model {len(only_model)}, "
            f"differing {len(differing)}" + (f" (e.g. {(only_file + only_model + differing)[0]})"
                                              if only_file or only_model or differing else ""))
    return model


# --------------------------------------------------------------------------------------------
# A. Attune-trained adapters in peft


def merged_reference(file: dict[str, np.ndarray], config: dict,
                     base_weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """reference.md's merge in float64: W + s·B@A; DoRA (m / ‖W + s·B@A‖_row) · (W + s·B@A)."""
    s = scaling(config)
    out = {}
    for key in file:
        if not key.endswith(".lora_A.weight"):
            continue
        path = key[len("base_model.model."):-len(".lora_A.weight")]
        a = file[key].astype(np.float64)
        b = file[f"base_model.model.{path}.lora_B.weight"].astype(np.float64)
        w = base_weights[f"{path}.weight"].astype(np.float64)
        merged = w + s * (b @ a)
        if config.get("use_dora"):
            m = file[f"base_model.model.{path}.lora_magnitude_vector"].astype(np.float64)
            merged = (m / np.linalg.norm(merged, axis=1))[:, None] * merged
        out[f"{path}.weight"] = merged
    return out


def check_attune_adapter(rep: Report, method: str, work: Path, data: Path, tok, first_ids: list[int]) -> None:
    case = f"A {method}: attune -> peft"
    home = work / "home"
    out = work / f"attune-{method}"
    res = train(home, data, out, method, ["--steps", "3", "--rank", "4", "--alpha", "8", "--lr", "5e-3",
                                          "--dropout", "0", "--no-shuffle"])
    written = (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
    if not rep.add(case, "attune train writes a PEFT folder", res.returncode == 0 and written,
                   f"exit {res.returncode}" + ("" if res.returncode == 0 and written else f": {_tail(res)}")):
        return
    metrics = read_metrics(out)
    rep.add(case, "metrics.jsonl: 3 steps, finite losses",
            len(metrics) == 3 and all(math.isfinite(m["loss"]) for m in metrics),
            "losses " + ", ".join(f"{m['loss']:.4f}" for m in metrics))
    config = read_config(out)
    file = read_tensors(out)
    want_keys = {"lora_A.weight", "lora_B.weight"} | ({"lora_magnitude_vector"} if method == "dora" else set())
    per_module = {}
    for key in file:
        path, _, kind = key.partition(".lora_")
        per_module.setdefault(path, set()).add("lora_" + kind)
    rep.add(case, "config and tensors as asked",
            config.get("peft_type") == "LORA" and config.get("r") == 4 and config.get("lora_alpha") == 8
            and bool(config.get("use_dora")) == (method == "dora") and target_names(config) == set(LINEAR)
            and len(per_module) == 14 and all(v == want_keys for v in per_module.values())
            and all(v.dtype == np.float32 for v in file.values()),
            f"r {config.get('r')}, alpha {config.get('lora_alpha')}, use_dora {config.get('use_dora')}, "
            f"{len(per_module)} modules x {len(want_keys)} tensors, "
            f"dtypes {sorted({str(v.dtype) for v in file.values()})}")
    b_max = [float(np.abs(v).max()) for k, v in file.items() if k.endswith("lora_B.weight")]
    rep.add(case, "trained: every lora_B non-zero", bool(b_max) and min(b_max) > 0,
            f"min over tensors of max|B| {min(b_max):.3e}" if b_max else "no lora_B")

    model = check_loads_cleanly(rep, case, out)
    if model is None:
        return
    probe_ids = encode_text(tok, PROBE_TEXT)
    base_logits = logits(load_base(), probe_ids)
    adapter_logits = logits(model, probe_ids)
    moved = float(np.abs(adapter_logits - base_logits).max())
    rep.add(case, "the adapter changes the logits", moved > LOGITS_MOVED_MIN,
            f"max|logits(peft) - logits(base)| {moved:.3e} (> {LOGITS_MOVED_MIN:g})")

    # Merge: peft's merge_and_unload vs the formula in NumPy on the saved files.
    from safetensors.numpy import load_file

    base_weights = load_file(str(BASE / "model.safetensors"))
    reference = merged_reference(file, config, base_weights)
    with captured_warnings():
        merged_model = model.merge_and_unload()
    merged = {k: v.detach().double().numpy() for k, v in merged_model.state_dict().items()}
    missing = sorted(set(reference) - set(merged))
    worst_key, worst = "", 0.0
    for key, ref in reference.items():
        if key in merged:
            d = float(np.abs(merged[key] - ref).max())
            if d > worst:
                worst_key, worst = key, d
    rep.add(case, "merge_and_unload = W + s·B@A" + (" with DoRA's m/‖·‖" if method == "dora" else ""),
            not missing and len(reference) == 14 and worst <= MERGE_TOL,
            f"{len(reference)} weights, max|Δ| {worst:.2e} ({worst_key.replace('model.layers.', 'L')}) "
            f"<= {MERGE_TOL:g}"
            + (f"; missing {missing[0]}" if missing else ""))
    untouched = [k for k in base_weights if k not in reference]
    changed = [k for k in untouched
               if k in merged and not np.array_equal(merged[k], base_weights[k].astype(np.float64))]
    rep.add(case, "merge leaves untargeted weights alone", not changed and all(k in merged for k in untouched),
            f"{len(untouched)} weights; changed {len(changed)}")
    merged_logits = logits(merged_model, probe_ids)
    d = float(np.abs(merged_logits - adapter_logits).max())
    rep.add(case, "merged model logits = adapter model logits", d <= LOGITS_MERGED_TOL,
            f"max|Δ| {d:.2e} <= {LOGITS_MERGED_TOL:g}")

    # The adapter's effect through the loss: Attune's forward with it vs peft's.
    peft_model, _ = load_peft(out)
    peft_loss = mean_ce(peft_model, first_ids)
    again = work / f"attune-{method}-reloaded"
    res = train(home, data, again, method, ["--init-adapter", str(out), "--steps", "1", "--lr", "1e-12",
                                            "--dropout", "0", "--no-shuffle"])
    if not rep.add(case, "attune reloads its own adapter (--init-adapter)", res.returncode == 0,
                   f"exit {res.returncode}" + ("" if res.returncode == 0 else f": {_tail(res)}")):
        return
    attune_loss = read_metrics(again)[0]["loss"]
    rep.add(case, "loss with the adapter: Attune = peft", abs(attune_loss - peft_loss) <= LOSS_TOL,
            f"attune {attune_loss:.7f}, peft {peft_loss:.7f}, |Δ| {abs(attune_loss - peft_loss):.2e} <= {LOSS_TOL:g}")


# --------------------------------------------------------------------------------------------
# B. PEFT-made adapters in Attune


def make_scaled_magnitude_dora(folder: Path) -> Path:
    """A DoRA adapter saved by peft whose magnitude is not ‖W‖_row (llama-dora-all's is: it was made
    with B = 0), so a loader that drops the magnitude and re-initialises it is caught."""
    model, _ = load_peft(PEFT_FIXTURES / "llama-dora-all")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_magnitude_vector" in name:
                ramp = torch.linspace(0.8, 1.25, p.numel(), dtype=p.dtype).reshape(p.shape)
                p.mul_(ramp)
    with captured_warnings():
        model.save_pretrained(str(folder))
    (folder / "README.md").unlink(missing_ok=True)
    return folder


def check_peft_adapter(rep: Report, name: str, source: Path, work: Path, data: Path, first_ids: list[int]) -> None:
    case = f"B {name}: peft -> attune"
    config_in = read_config(source)
    method = "dora" if config_in.get("use_dora") else "lora"
    out = work / f"from-{name}"
    res = train(work / "home", data, out, method, ["--init-adapter", str(source), "--steps", "1", "--lr", "1e-12",
                                                   "--dropout", "0", "--no-shuffle"])
    written = (out / "adapter_model.safetensors").exists() and (out / "adapter_config.json").exists()
    if not rep.add(case, "attune train --init-adapter accepts it", res.returncode == 0 and written,
                   f"exit {res.returncode}" + ("" if res.returncode == 0 and written else f": {_tail(res)}")):
        return
    file_in, file_out = read_tensors(source), read_tensors(out)
    config_out = read_config(out)
    only_in, only_out = sorted(set(file_in) - set(file_out)), sorted(set(file_out) - set(file_in))
    shapes = [k for k in set(file_in) & set(file_out) if file_in[k].shape != file_out[k].shape]
    rep.add(case, "same tensor names and shapes", not only_in and not only_out and not shapes,
            f"{len(file_in)} tensors; only in input {len(only_in)}, only in output {len(only_out)}, shape differs "
            f"{len(shapes)}" + (f" (e.g. {(only_in + only_out + shapes)[0]})" if only_in or only_out or shapes else ""))
    settings = ("r", "lora_alpha", "use_dora", "use_rslora")
    diff = [f"{k}: {config_in.get(k)!r} -> {config_out.get(k)!r}" for k in settings
            if bool(config_in.get(k)) != bool(config_out.get(k))
            or (k in ("r", "lora_alpha") and config_in.get(k) != config_out.get(k))]
    if target_names(config_in) != target_names(config_out):
        diff.append(f"targets {sorted(target_names(config_in))} -> {sorted(target_names(config_out))}")
    rep.add(case, "settings kept (r, alpha, dora, rslora, targets)", not diff,
            "; ".join(diff) if diff else f"r {config_out.get('r')}, alpha {config_out.get('lora_alpha')}, "
            f"use_dora {config_out.get('use_dora')}, use_rslora {config_out.get('use_rslora')}")
    worst_key, worst = "", 0.0
    for key in sorted(set(file_in) & set(file_out)):
        ref = file_in[key].astype(np.float64)
        scale = float(np.abs(ref).max()) or 1.0
        d = float(np.abs(file_out[key].astype(np.float64) - ref).max()) / scale
        if d > worst or not worst_key:
            worst_key, worst = key, d
    short = worst_key.replace("base_model.model.model.layers.", "L")
    rep.add(case, "every tensor read by its PEFT name (out = in)",
            bool(file_in) and not only_in and worst <= ROUNDTRIP_TOL,
            f"max over tensors of max|Δ|/max|in| {worst:.2e} ({short}) <= {ROUNDTRIP_TOL:g}")

    peft_model, found = load_peft(source)
    peft_loss = mean_ce(peft_model, first_ids)
    attune_loss = read_metrics(out)[0]["loss"]
    rep.add(case, "loss with the adapter: Attune = peft", abs(attune_loss - peft_loss) <= LOSS_TOL,
            f"attune {attune_loss:.7f}, peft {peft_loss:.7f}, |Δ| {abs(attune_loss - peft_loss):.2e} <= {LOSS_TOL:g}")
    check_loads_cleanly(rep, case + " (written back)", out)


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", choices=("auto", "always", "never"), default="auto",
                        help="build the CLI and the native addon first: when missing or older than their sources "
                             "(auto, the default), always, or never")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    args = parser.parse_args()

    started = time.monotonic()
    try:
        peft, transformers = _imports()
    except ImportError as error:
        print(f"interop: cannot import the Python reference libraries ({error}); run bash scripts/python-env.sh")
        return 2
    print(f"interop: torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}",
          flush=True)
    ensure_built(args.build)

    work = Path(tempfile.mkdtemp(prefix="attune-interop-"))
    rep = Report()
    try:
        data = work / "data.jsonl"
        data.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
        tok = tokenizer()
        first_ids = encode_text(tok, TEXTS[0])  # step 1 of a --no-shuffle, batch-size-1 run
        for method in ("lora", "dora"):
            try:
                check_attune_adapter(rep, method, work, data, tok, first_ids)
            except Exception as error:  # noqa: BLE001
                rep.crash(f"A {method}: attune -> peft", "(unexpected error)", error)
        sources = [(name, PEFT_FIXTURES / name) for name in ("llama-lora-qv", "llama-dora-all")]
        try:
            sources.append(("dora-scaled-magnitude", make_scaled_magnitude_dora(work / "peft-dora-scaled-magnitude")))
        except Exception as error:  # noqa: BLE001
            rep.crash("B dora-scaled-magnitude", "peft makes the adapter", error)
        for name, source in sources:
            try:
                check_peft_adapter(rep, name, source, work, data, first_ids)
            except Exception as error:  # noqa: BLE001
                rep.crash(f"B {name}: peft -> attune", "(unexpected error)", error)
    finally:
        if args.keep:
            print(f"interop: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    rep.print()
    print(f"({time.monotonic() - started:.1f} s)")
    return 1 if rep.failed else 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
