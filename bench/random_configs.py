"""Random configurations through the user's commands: every block lint-clean as delivered,
every small network lint-clean and bit-exact in RTL.

    .venv/bin/python bench/random_configs.py blocks --count 60 --seed 2
    .venv/bin/python bench/random_configs.py blocks --count 20 --only requant sparse_decoder
    .venv/bin/python bench/random_configs.py networks --count 20 --seed 3 --images 6

``blocks``: for every block whose parameters ``cnn-ip block`` takes (the stages, whose
layer comes from a plan, are covered by ``networks``), ``--count`` seeded random valid
configurations: each parameter at its range's ends, small values, powers of two or near
the example's value (sizes capped by ``CAP`` so a run takes minutes), weight files and
constants drawn to match the fold.  Each is written by ``cnn_ip.export.generate`` (what
``cnn-ip block`` calls) and linted with the user's command (``verilator --lint-only -Wall
NAME.vlt NAME.v ...``, ``cnn_ip.export.lint_command``).

``networks``: ``--count`` random small plans (1-4 conv or max-pool layers and a
classifier; every weight mode, activation width, stride, padding, sparsity and data flow
a plan may fix; about half of them on the ``digits`` input) through ``cnn-ip assemble
--random-weights`` in a subprocess; the RTL is linted as a user would; the ``digits`` ones
also run ``cnn-ip simulate --images N`` (every output value against the integer model,
random stalls).  Plans the loader refuses (one line, exit 2) are drawn again and counted.

Prints one line a failure (the configuration, the first lines of the message) and a table
a block or kind; asserts nothing.  Scratch under the system temp dir (``--keep`` keeps it).
Found, and fixed, by its first runs (2026-12-04): a requant shift wider than the product
refused by the lint waiver parser; five to seven decoder elements a beat not lint-clean;
a /2 decoder of lanes 32 x simd 64 with a line Verilator refuses; and, through
``cnn-ip simulate``, MyHDL's converter dropping a signed cast (``blocks.myhdl_patches``).
"""
from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from blocks.spec import ParameterError
from cnn_ip.block_cmd import all_blocks
from cnn_ip.export import generate, lint_command

# Upper ends of sizes drawn for a parameter of this name (its own range otherwise)
CAP = {"width": 300, "height": 40, "channels": 512, "simd": 64, "lanes": 64, "lanes_in": 64,
       "lanes_out": 64, "groups_in": 16, "repeat": 16, "reduce": 5000, "bits": 1024,
       "depth": 20000, "passes": 500, "pixels": 500, "group_beats": 500, "block": 256,
       "max_burst": 256}
STAGES = {"conv_row", "conv_frame", "maxpool_stage"}   # a layer object: networks cover them
CLI = [sys.executable, "-m", "cnn_ip.cli"]


def draw_int(rng: random.Random, param, example):
    lo = param.lo if param.lo is not None else 0
    hi = max(lo, min(param.hi if param.hi is not None else lo + 64,
                     CAP.get(param.name, 1 << 30)))
    pick = rng.random()
    if pick < 0.2:
        return lo
    if pick < 0.3:
        return hi
    if pick < 0.6:
        return rng.randint(lo, min(hi, lo + 9))
    if pick < 0.8:
        powers = [1 << k for k in range(13) if lo <= 1 << k <= hi]
        return rng.choice(powers) if powers else lo
    if example is not None:
        return max(lo, min(hi, example + rng.randint(-2, 2)))
    return rng.randint(lo, hi)


def weight_matrix(rng: random.Random, values: dict) -> np.ndarray:
    """A sparse_decoder weights file for the drawn fold: 1-4 groups, 1-6 beats a pass,
    any density, sometimes zeroed in aligned blocks."""
    lanes, simd = values["lanes"], values["simd"]
    nr = np.random.default_rng(rng.randrange(1 << 30))
    shape = (lanes * rng.randint(1, 4), simd * rng.randint(1, 6))
    mode = values.get("weights", "ternary")
    if mode == "binary":
        return nr.choice([-1, 1], size=shape)
    top = 1 if mode == "ternary" else (1 << (values.get("wbits", 8) - 1)) - 1
    w = nr.integers(-top, top + 1, size=shape)
    w[nr.random(shape) > rng.random()] = 0
    block = rng.choice([2, 4, 8])
    if rng.random() < 0.3 and shape[1] % block == 0:
        keep = nr.random((shape[0], shape[1] // block)) < rng.random()
        w = w * np.repeat(keep, block, axis=1)
    return w


def requant_constants(rng: random.Random, values: dict) -> dict:
    nr = np.random.default_rng(rng.randrange(1 << 30))
    cout = values["lanes"] * rng.randint(1, 3)
    m = nr.integers(1, 1 << rng.randint(1, 8), size=cout)
    bias_bits = rng.randint(2, max(2, min(values["acc_bits"], 24)))
    half = 1 << (bias_bits - 1)
    constants = {"bias": nr.integers(-half, half, size=cout), "M": m}
    if rng.random() < 0.5:
        constants["M_neg"] = m // 2
    return constants


def draw_block(rng: random.Random, block_def) -> dict:
    """Random parameter values (not yet validated); an array or mapping parameter is drawn
    to match the fold, other non-scalar ones keep the example's."""
    example, values = block_def.example(), {}
    for param in block_def.params:
        known = example.get(param.name)
        if param.name in example and (rng.random() < 0.3 or not isinstance(
                known, (bool, int, str)) or param.kind == "path"):
            values[param.name] = known
        elif param.kind is bool:
            values[param.name] = rng.random() < 0.5
        elif param.choices is not None:
            values[param.name] = rng.choice(param.choices)
        elif param.kind is int:
            values[param.name] = draw_int(rng, param, known if isinstance(known, int) else None)
        elif param.name in example:              # a free-form string (group_buffer's lists)
            values[param.name] = known
    if block_def.name == "sparse_decoder":
        for derived_from_file in ("word_bits", "beats"):
            values.pop(derived_from_file, None)
        if values.get("coding") != "block":
            values.pop("block", None)
            values.pop("inner", None)
        values["weights_file"] = weight_matrix(rng, values)
    if block_def.name == "requant":
        values["constants"] = requant_constants(rng, values)
    return values


def scalar_view(values: dict) -> dict:
    return {k: v for k, v in values.items() if isinstance(v, (bool, int, str))}


def sweep_blocks(names, count: int, seed: int, scratch: Path) -> list[dict]:
    rows = []
    blocks = all_blocks()
    for name in names:
        block_def = blocks[name]
        rng = random.Random(f"{name}:{seed}")
        row = {"kind": name, "ok": 0, "failed": 0, "refused": 0}
        with tqdm(total=count, desc=name, unit="config", leave=False) as bar:
            while row["ok"] + row["failed"] < count and row["refused"] < 40 * count:
                values = draw_block(rng, block_def)
                try:
                    block_def.prepared(**values)
                except (ParameterError, ValueError):
                    row["refused"] += 1
                    continue
                out = scratch / name / str(row["ok"] + row["failed"])
                problem = lint_generated(block_def, out, values)
                row["failed" if problem else "ok"] += 1
                if problem:
                    tqdm.write(f"FAIL {name} {scalar_view(values)}\n  {problem}")
                bar.update()
        rows.append(row)
    return rows


def lint_generated(block_def, out: Path, values: dict) -> str | None:
    try:
        generate(block_def, out, **values)
    except Exception as error:        # noqa: BLE001  (any failure of a valid configuration)
        return f"{type(error).__name__}: {first_lines(str(error))}"
    return user_lint(out, block_def.name)


def user_lint(directory: Path, top: str) -> str | None:
    """The user's lint command in ``directory``: ``None`` if it exits 0 without a message."""
    done = subprocess.run(lint_command(directory, top), cwd=directory, capture_output=True,
                          text=True)
    messages = done.stdout + done.stderr
    if done.returncode or "%" in messages:
        return f"lint: {first_lines(messages)}"
    return None


def first_lines(text: str, n: int = 3) -> str:
    return "\n  ".join(line[:300] for line in text.strip().splitlines()[:n])


def draw_plan(rng: random.Random, index: int, digits: bool) -> dict:
    """A small plan: 1-4 conv / max-pool layers, then a classifier (dense, or a 1x1 conv
    head without a data set)."""
    height = 8 if digits else rng.choice([4, 5, 6, 8, 9, 12])
    width = 8 if digits else rng.choice([height, 6, 8])
    h, w, layers = height, width, []
    for _ in range(rng.randint(1, 4)):
        if layers and rng.random() < 0.25:
            k = rng.choice([2, 2, 3])
            if k > min(h, w):
                continue
            stride = rng.choice([k, 1, 2])
            layers.append({"type": "maxpool", "k": k, "stride": stride})
            h, w = (h - k) // stride + 1, (w - k) // stride + 1
            continue
        k = min(rng.choice([1, 3, 3, 2, 5]), h, w)
        pad, stride = rng.randint(0, k // 2), rng.choice([1, 1, 2])
        mode = rng.choice(["binary", "ternary", "int2", "int3", "int4", "int8"])
        layer = {"type": "conv", "out": rng.choice([2, 4, 6, 8, 16]), "k": k, "pad": pad,
                 "stride": stride, "act": rng.choice(["relu", "relu", "leaky", "none"]),
                 "weights": mode, "act_bits": rng.randint(1, 8)}
        if mode != "binary" and rng.random() < 0.5:
            layer["sparsity"] = rng.choice([0.3, 0.6, 0.9])
        if rng.random() < 0.3:
            layer["dataflow"] = rng.choice(["row", "frame"])
        layers.append(layer)
        h, w = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    mode = rng.choice(["ternary", "int4", "int8", "binary"])
    if digits or rng.random() < 0.7:
        layers.append({"type": "dense", "out": 10 if digits else rng.choice([2, 5, 10]),
                       "weights": mode})
    else:
        layers.append({"type": "conv", "out": rng.choice([3, 6]), "k": 1, "act": "none",
                       "weights": "int8"})
    plan = {"name": f"net{index}", "input": {"channels": 1 if digits else rng.randint(1, 4),
                                             "height": height, "width": width, "bits": 8},
            "device": rng.choice(["ecp5-85f", "ecp5-85f", "xc7z020", "ecp5-25f"]),
            "clock_mhz": 100, "layers": layers}
    if digits:
        plan["dataset"] = "digits"
    if rng.random() < 0.4:
        plan["dataflow"] = rng.choice(["row", "frame", "auto"])
    return plan


def check_network(directory: Path, plan: dict, images: int) -> str | None:
    (directory / "plan.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    hw = directory / "hw"
    done = subprocess.run(CLI + ["assemble", str(directory / "plan.yaml"), "--random-weights",
                                 "-o", str(hw)], capture_output=True, text=True)
    if done.returncode == 2:
        return "refused"
    if done.returncode:
        return f"assemble exit {done.returncode}: {first_lines(done.stderr[-2000:])}"
    if problem := user_lint(hw / "rtl", plan["name"]):
        return problem
    if "dataset" in plan and images:
        sim = subprocess.run(CLI + ["simulate", str(hw), "--images", str(images)],
                             capture_output=True, text=True)
        if sim.returncode:
            return f"simulate: {first_lines(sim.stdout + sim.stderr, 6)}"
    return None


def sweep_networks(count: int, seed: int, images: int, scratch: Path) -> list[dict]:
    rng = random.Random(f"networks:{seed}")
    row = {"kind": "networks", "ok": 0, "failed": 0, "refused": 0, "simulated": 0}
    index = 0
    with tqdm(total=count, desc="networks", unit="plan", leave=False) as bar:
        while row["ok"] + row["failed"] < count and row["refused"] < 40 * count:
            index += 1
            plan = draw_plan(rng, index, digits=rng.random() < 0.5)
            directory = scratch / f"net{index}"
            directory.mkdir(parents=True)
            problem = check_network(directory, plan, images)
            if problem == "refused":
                row["refused"] += 1
                continue
            row["failed" if problem else "ok"] += 1
            row["simulated"] += bool(not problem and "dataset" in plan and images)
            if problem:
                tqdm.write(f"FAIL {directory / 'plan.yaml'}\n  {problem}")
            bar.update()
    return [row]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("blocks", "networks"))
    parser.add_argument("--count", type=int, default=20, help="configurations a block / plans")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None, metavar="BLOCK")
    parser.add_argument("--images", type=int, default=4,
                        help="networks on digits: images simulated (0: lint only)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")              # MyHDL's conversion warnings, per config
    scratch = Path(tempfile.mkdtemp(prefix="cnn_ip-random-"))
    try:
        if args.what == "blocks":
            names = sorted(n for n in all_blocks() if n not in STAGES)
            unknown = set(args.only or ()) - set(names)
            if unknown:
                parser.error(f"--only: not a block cnn-ip block takes: {', '.join(sorted(unknown))}")
            rows = sweep_blocks(args.only or names, args.count, args.seed, scratch)
        else:
            rows = sweep_networks(args.count, args.seed, args.images, scratch)
    finally:
        if args.keep:
            print(f"scratch kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n| {args.what} (seed {args.seed}) | ok | failed | refused draws |")
    print("|---|---|---|---|")
    for row in rows:
        extra = f" ({row['simulated']} simulated)" if "simulated" in row else ""
        print(f"| {row['kind']} | {row['ok']}{extra} | {row['failed']} | {row['refused']} |")
    return 1 if any(row["failed"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
