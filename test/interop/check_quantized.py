#!/usr/bin/env python3
"""bitsandbytes/transformers interop check of `attune quantize`.

    .venv/bin/python test/interop/check_quantized.py [--build auto|always|never] [--keep]

Drives the real `attune quantize` (bin/attune.js, the built CLI and native engine) on the golden
models (test/golden/fixtures) and reads every output with transformers and safetensors. bitsandbytes
itself is not installed here (and its loader needs a GPU), so the checks stop where it would take
over: each stored tensor is compared with what bitsandbytes would have saved, and each layer's
quant_state is parsed the way bitsandbytes' QuantState.from_dict parses it.

Cases: llama (F32, double quant), qwen2 (tied embeddings, q/k/v biases), qwen3 with
--no-double-quant --blocksize 128, llama sharded (--max-shard-size 100KB), and a BF16 copy of qwen2
saved by transformers. For each output folder:
  files      weights files (model.safetensors, or shards + model.safetensors.index.json), config.json,
             and the source's tokenizer/generation files byte for byte; no source weights copied;
  safetensors  every file read by transformers' own reader (modeling_utils.load_state_dict); metadata
             {"format": "pt"}; each file byte for byte what safetensors.torch.save writes for the same
             tensors (the reference writer); the index as save_pretrained writes it (json.dumps indent 2,
             sorted keys), its weight_map covering every tensor and total_size their bytes;
  keys       exactly the state-dict keys transformers expects of this model in 4-bit: the modules
             bitsandbytes would replace (every nn.Linear that transformers' bnb quantizer does not skip,
             found with its own get_modules_to_not_convert + should_convert_module on the model built
             from config.json) have weight + absmax + quant_map (+ nested_absmax + nested_quant_map) +
             quant_state.bitsandbytes__nf4, each among the bnb 4-bit WeightConverter's source patterns;
             every other key as in the source, same dtype, shape and bits;
  nf4        per layer: dtypes and shapes of a bitsandbytes checkpoint, quant_map = get_4bit_type("nf4"),
             nested_quant_map = create_dynamic_map(signed=True), quant_state parsed as
             QuantState.from_dict does (one quant_state key, keys within valid_qs_keys, dtype a torch
             dtype, shape the layer's) and byte for byte json.dumps of QuantState.as_dict's non-tensor
             items; packed codes, absmax (or 8-bit absmax codes, absmax2 and offset) bit for bit equal to
             test/golden/nf4_reference.py (bitsandbytes' algorithm reimplemented) on the source weight;
  config     quantization_config == BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
             bnb_4bit_use_double_quant=…, bnb_4bit_compute_dtype=<model dtype>).to_dict(), written as
             transformers writes it; every other key as in the source; AutoConfig reads it and
             AutoHfQuantizer picks the bitsandbytes 4-bit quantizer; from_pretrained gets as far as
             asking for bitsandbytes.

Prints a PASS/FAIL table; exits 1 when any check fails (2 when it cannot run at all).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "test" / "golden" / "fixtures"
sys.path.insert(0, str(ROOT / "test" / "golden"))

# bnb's Linear4bit state-dict suffixes, and the WeightConverter source patterns of transformers' bnb 4-bit quantizer.
NESTED_SUFFIXES = ("", ".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", ".quant_state.bitsandbytes__nf4")
PLAIN_SUFFIXES = ("", ".absmax", ".quant_map", ".quant_state.bitsandbytes__nf4")
# QuantState.valid_qs_keys (bitsandbytes functional.py).
VALID_QS_KEYS = {"absmax", "quant_map", "nested_absmax", "nested_quant_map", "quant_state", "quant_type", "blocksize",
                 "dtype", "shape", "nested_blocksize", "nested_dtype", "nested_offset"}


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
        print(f"quantize interop check: {'FAIL (%d of %d checks failed)' % (self.failed, total) if self.failed else 'PASS (%d checks)' % total}")


# --------------------------------------------------------------------------------------------
# Building and running Attune


def _newest_mtime(paths: list[Path]) -> float:
    newest = 0.0
    for p in paths:
        files = [p] if p.is_file() else (f for f in p.rglob("*") if f.is_file()) if p.is_dir() else []
        for f in files:
            newest = max(newest, f.stat().st_mtime)
    return newest


def ensure_built(mode: str) -> None:
    """`auto`: build what is missing or older than its sources; `always`; `never`."""
    if mode == "never":
        return
    builds = [
        (ROOT / "native" / "build" / "Release" / "attune_engine.node",
         [ROOT / "native" / d for d in ("src", "addon", "include")] + [ROOT / "native" / "CMakeLists.txt"],
         ["node", "scripts/build-native.mjs"]),
        (ROOT / "out" / "main" / "cli.js", [ROOT / "src-main", ROOT / "package.json"], ["npx", "electron-vite", "build"]),
    ]
    for target, sources, command in builds:
        if mode == "always" or not target.exists() or target.stat().st_mtime < _newest_mtime(sources):
            print(f"quantize interop: building: {' '.join(command)}", flush=True)
            res = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if res.returncode != 0:
                sys.stdout.write(res.stdout[-4000:])
                raise SystemExit(2)


def attune_quantize(src: Path, out: Path, extra: list[str], home: Path) -> subprocess.CompletedProcess:
    command = ["node", str(ROOT / "bin" / "attune.js"), "quantize", str(src), "--out", str(out), *extra, "--home", str(home)]
    return subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)


# --------------------------------------------------------------------------------------------
# Checks


def weights_files(folder: Path) -> list[str]:
    if (folder / "model.safetensors").exists():
        return ["model.safetensors"]
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    return sorted(set(index["weight_map"].values()))


def read_all(folder: Path) -> dict:
    from transformers.modeling_utils import load_state_dict

    tensors = {}
    for name in weights_files(folder):
        tensors.update(load_state_dict(str(folder / name)))
    return tensors


def torch_dtype_name(dtype) -> str:
    return str(dtype).split(".")[-1]


def expected_quantized_modules(src: Path) -> tuple[set[str], set[str]]:
    """(modules transformers' bnb 4-bit loading replaces by Linear4bit, every state-dict key of the model)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.quantizers.base import HfQuantizer
    from transformers.quantizers.quantizers_utils import should_convert_module

    config = AutoConfig.from_pretrained(src)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    skip = HfQuantizer.get_modules_to_not_convert(model, None, getattr(model, "_keep_in_fp32_modules", None))
    modules = {name for name, module in model.named_modules()
               if type(module) is torch.nn.Linear and should_convert_module(name, skip)}
    keys = set(model.state_dict().keys())
    if getattr(config, "tie_word_embeddings", False):
        keys.discard("lm_head.weight")  # save_pretrained drops tied weights
    return modules, keys


def from_dict_like_bitsandbytes(stats: dict) -> dict:
    """The parsing steps of bitsandbytes' QuantState.from_dict on one layer's tensors (keys without the layer prefix)."""
    qs_keys = [k for k in stats if "quant_state" in k]
    if len(qs_keys) != 1 or qs_keys[0].split(".")[-1] not in ("bitsandbytes__nf4", "bitsandbytes__fp4"):
        raise ValueError(f"expected exactly one quant_state.bitsandbytes__nf4/fp4 item, found {qs_keys}")
    stats = dict(stats)
    packed = stats.pop(qs_keys[0])
    stats.update(json.loads(bytes(packed.numpy()).decode("utf-8")))  # bitsandbytes.utils.unpack_tensor_to_dict
    stats = {k.split(".")[-1]: v for k, v in stats.items()}
    extra = set(stats) - VALID_QS_KEYS
    if extra:
        raise ValueError(f"keys outside QuantState.valid_qs_keys: {sorted(extra)}")
    import torch

    for key in ("dtype",) + (("nested_dtype",) if "nested_absmax" in stats else ()):
        if not isinstance(getattr(torch, stats[key], None), torch.dtype):
            raise ValueError(f"{key} {stats[key]!r} is not a torch dtype")
    if "nested_absmax" in stats:
        float(stats["nested_offset"])
        int(stats["nested_blocksize"])
    return stats


def check_case(rep: Report, case: str, src: Path, out: Path, blocksize: int, nested: bool, max_shard: int | None) -> None:
    import torch
    import safetensors.torch
    from safetensors import safe_open
    from transformers import AutoConfig, BitsAndBytesConfig
    from transformers.quantizers.auto import AutoHfQuantizer

    import nf4_reference as ref

    # files
    source_files = sorted(p.name for p in src.iterdir() if p.is_file())
    copied = [f for f in source_files if f != "config.json" and not f.endswith(".safetensors") and not f.endswith(".index.json")]
    weights = weights_files(out)
    expected_files = sorted(copied + ["config.json"] + weights + (["model.safetensors.index.json"] if len(weights) > 1 else []))
    rep.add(case, "files: weights, config.json, copied files", sorted(p.name for p in out.iterdir()) == expected_files,
            f"{len(weights)} weights file(s), {len(copied)} copied")
    rep.add(case, "files: copied byte for byte", all((out / f).read_bytes() == (src / f).read_bytes() for f in copied),
            ", ".join(copied))

    # safetensors
    state = read_all(out)
    source = read_all(src)
    metadata_ok = True
    identical = True
    for name in weights:
        with safe_open(str(out / name), framework="pt") as f:
            metadata_ok &= f.metadata() == {"format": "pt"}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        identical &= safetensors.torch.save(tensors, metadata={"format": "pt"}) == (out / name).read_bytes()
    rep.add(case, "safetensors: transformers' reader loads it", len(state) > 0, f"{len(state)} tensors")
    rep.add(case, "safetensors: metadata {format: pt}", metadata_ok)
    rep.add(case, "safetensors: bytes = safetensors.torch.save", identical, "same tensors, same metadata, every file")
    if len(weights) > 1:
        text = (out / "model.safetensors.index.json").read_text()
        index = json.loads(text)
        total = sum(t.numel() * t.element_size() for t in state.values())
        sizes = {}
        for key, file in index["weight_map"].items():
            sizes.setdefault(file, []).append(state[key].numel() * state[key].element_size())
        rep.add(case, "index: as save_pretrained writes it", text == json.dumps(index, indent=2, sort_keys=True) + "\n")
        parameters = sum(t.numel() for t in source.values())  # num_parameters() of the 4-bit model counts 2 per packed byte
        rep.add(case, "index: weight_map = every tensor, total_size",
                set(index["weight_map"]) == set(state) and index["metadata"]["total_size"] == total
                and index["metadata"]["total_parameters"] == parameters,
                f"{len(index['weight_map'])} keys, {total} bytes, {parameters} parameters")
        rep.add(case, "index: shards within --max-shard-size",
                all(sum(s) <= max_shard for s in sizes.values() if len(s) > 6), f"{len(sizes)} shards")

    # keys
    modules, model_keys = expected_quantized_modules(src)
    suffixes = NESTED_SUFFIXES if nested else PLAIN_SUFFIXES
    expected_keys = set()
    for key in model_keys:
        module = key.rsplit(".", 1)[0]
        if module in modules and key.endswith(".weight"):
            expected_keys.update(key + s for s in suffixes)
        else:
            expected_keys.add(key)
    rep.add(case, "keys: exactly what transformers expects in 4-bit", set(state) == expected_keys,
            f"{len(modules)} Linear4bit modules; missing {sorted(expected_keys - set(state))[:3]}, "
            f"unexpected {sorted(set(state) - expected_keys)[:3]}")
    qc = json.loads((out / "config.json").read_text())["quantization_config"]
    quantizer = AutoHfQuantizer.from_config(qc, pre_quantized=True)
    patterns = quantizer.get_weight_conversions()[0].source_patterns
    rep.add(case, "keys: each among bnb 4-bit WeightConverter patterns",
            all(any(f"weight{s}" == p for p in patterns) for s in suffixes), f"{type(quantizer).__name__}")
    unchanged = all(state[k].dtype == source[k].dtype and torch.equal(state[k], source[k])
                    for k in expected_keys if k in source and k.rsplit(".", 1)[0] not in modules)
    rep.add(case, "keys: the others unchanged (dtype, shape, bits)", unchanged)

    # nf4
    layout_ok = maps_ok = qs_ok = bits_ok = True
    problems: list[str] = []
    dtype = None
    for module in sorted(modules):
        w = source[f"{module}.weight"]
        dtype = torch_dtype_name(w.dtype)
        n = w.numel()
        blocks = -(-n // blocksize)
        p = f"{module}.weight"
        layout = {p: (torch.uint8, (-(-n // 2), 1)), p + ".absmax": (torch.uint8 if nested else torch.float32, (blocks,)),
                  p + ".quant_map": (torch.float32, (16,)), p + ".quant_state.bitsandbytes__nf4": (torch.uint8, None)}
        if nested:
            layout[p + ".nested_absmax"] = (torch.float32, (-(-blocks // 256),))
            layout[p + ".nested_quant_map"] = (torch.float32, (256,))
        for key, (want_dtype, want_shape) in layout.items():
            if state[key].dtype != want_dtype or (want_shape is not None and tuple(state[key].shape) != want_shape):
                layout_ok = False
                problems.append(f"{key} {state[key].dtype} {tuple(state[key].shape)}")
        maps_ok &= np.array_equal(state[p + ".quant_map"].numpy(), ref.NF4_CODE)
        if nested:
            maps_ok &= np.array_equal(state[p + ".nested_quant_map"].numpy(), ref.CODE8)
        stats = {k[len(p) + 1:]: v for k, v in state.items() if k.startswith(p + ".")}
        parsed = from_dict_like_bitsandbytes(stats)
        st = ref.quantize_nf4(w, blocksize)
        as_dict = {"quant_type": "nf4", "blocksize": blocksize, "dtype": dtype, "shape": list(w.shape)}
        if nested:
            dq = ref.double_quantize(st["absmax"])
            as_dict.update({"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": float(dq["offset"])})
        text = bytes(state[p + ".quant_state.bitsandbytes__nf4"].numpy()).decode("utf-8")
        qs_ok &= text == json.dumps(as_dict) and parsed["shape"] == list(w.shape) and parsed["dtype"] == dtype
        same = np.array_equal(state[p].numpy(), st["packed"])
        if nested:
            same &= np.array_equal(state[p + ".absmax"].numpy(), dq["absmax_q"])
            same &= np.array_equal(state[p + ".nested_absmax"].numpy().view(np.uint32), dq["absmax2"].view(np.uint32))
        else:
            same &= np.array_equal(state[p + ".absmax"].numpy().view(np.uint32), st["absmax"].view(np.uint32))
        if not same:
            problems.append(f"{p}: codes differ from nf4_reference")
        bits_ok &= bool(same)
    rep.add(case, "nf4: dtypes and shapes of a bnb checkpoint", layout_ok, "; ".join(problems[:2]))
    rep.add(case, "nf4: quant_map and nested_quant_map are bnb's", maps_ok)
    rep.add(case, "nf4: quant_state as QuantState.from_dict/as_dict", qs_ok, f"dtype {dtype}, blocksize {blocksize}")
    rep.add(case, "nf4: codes and absmax = nf4_reference, bit for bit", bits_ok, f"{len(modules)} weights")

    # config
    text = (out / "config.json").read_text()
    config = json.loads(text)
    source_config = json.loads((src / "config.json").read_text())
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=nested,
                             bnb_4bit_compute_dtype=getattr(torch, dtype))
    rep.add(case, "config: quantization_config = BitsAndBytesConfig.to_dict()", config["quantization_config"] == bnb.to_dict(),
            f"compute dtype {config['quantization_config'].get('bnb_4bit_compute_dtype')}, double quant {nested}")
    block = json.dumps({"quantization_config": bnb.to_dict()}, indent=2, sort_keys=True)[2:-2]
    rep.add(case, "config: written as transformers writes it", block in text)
    rep.add(case, "config: every other key unchanged", {k: v for k, v in config.items() if k != "quantization_config"} == source_config)
    loaded = AutoConfig.from_pretrained(out)
    rep.add(case, "config: AutoConfig reads the quantization_config",
            BitsAndBytesConfig.from_dict(loaded.quantization_config).to_dict() == bnb.to_dict()
            and type(quantizer).__name__ == "Bnb4BitHfQuantizer", type(quantizer).__name__)
    try:
        from transformers import AutoModelForCausalLM

        AutoModelForCausalLM.from_pretrained(out)
        rep.add(case, "from_pretrained stops only for bitsandbytes", False, "loaded without bitsandbytes?")
    except Exception as error:  # noqa: BLE001
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        rep.add(case, "from_pretrained stops only for bitsandbytes", "bitsandbytes" in str(error), message[:110])


def make_bf16_copy(src: Path, out: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16)
    model.save_pretrained(out)
    for f in src.iterdir():
        if f.is_file() and not (out / f.name).exists() and not f.name.endswith(".safetensors"):
            shutil.copy(f, out / f.name)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", choices=("auto", "always", "never"), default="auto",
                        help="build the CLI and the native addon first when missing or older than their sources")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        import torch
        import transformers
    except ImportError as error:
        print(f"quantize interop: cannot import the Python reference libraries ({error}); run bash scripts/python-env.sh")
        return 2
    print(f"quantize interop: torch {torch.__version__}, transformers {transformers.__version__}", flush=True)
    ensure_built(args.build)

    work = Path(tempfile.mkdtemp(prefix="attune-quantize-interop-"))
    rep = Report()
    try:
        cases = [
            ("llama", GOLDEN / "llama", [], 64, True, None),
            ("qwen2", GOLDEN / "qwen2", [], 64, True, None),
            ("qwen3 plain bs128", GOLDEN / "qwen3", ["--no-double-quant", "--blocksize", "128"], 128, False, None),
            ("llama sharded", GOLDEN / "llama", ["--max-shard-size", "100KB"], 64, True, 100_000),
        ]
        try:
            cases.append(("qwen2 bf16", make_bf16_copy(GOLDEN / "qwen2", work / "qwen2-bf16"), [], 64, True, None))
        except Exception as error:  # noqa: BLE001
            rep.crash("qwen2 bf16", "transformers saves a BF16 copy", error)
        for case, src, extra, blocksize, nested, max_shard in cases:
            out = work / "out" / case.replace(" ", "-")
            res = attune_quantize(src, out, extra, work / "home")
            if not rep.add(case, "attune quantize exits 0", res.returncode == 0, (res.stderr.strip().splitlines() or [""])[-1][:120]):
                continue
            try:
                check_case(rep, case, src, out, blocksize, nested, max_shard)
            except Exception as error:  # noqa: BLE001
                rep.crash(case, "(unexpected error)", error)
    finally:
        if args.keep:
            print(f"quantize interop: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    rep.print()
    print(f"({time.monotonic() - started:.1f} s)")
    return 1 if rep.failed else 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
