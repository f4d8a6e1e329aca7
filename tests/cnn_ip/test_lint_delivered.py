"""Lint-clean as delivered: what ``cnn-ip block`` writes passes Verilator exactly as a user runs it.

For every registered block whose parameters can be given on the command line, a few
configurations other than its example (one parameter at a time moved to an extreme or
another choice, seeded) are generated through the real ``cnn-ip block`` command in a
subprocess, then ``verilator --lint-only -Wall NAME.vlt NAME.v`` (and any other ``.v``
file the directory holds, such as ``*_sim.v`` models) must exit 0 without a message.
Every block's example configuration is checked the same way through ``cnn-ip demo`` in
``test_cli.py``.
"""
from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from blocks.spec import ParameterError, registry
from cnn_ip.block_cmd import all_blocks

VARIANTS = 2  # configurations per block besides the example


def user_lint(directory: Path, name: str) -> subprocess.CompletedProcess:
    """The user's command, spelled out here rather than taken from the code under test:
    ``NAME.vlt NAME.v`` first, then the shell's ``*.vlt *.v`` order (where a ``_sim.v``
    model named in capitals comes before the top); the first that fails, else the last."""
    others = sorted(p.name for p in directory.glob("*.v") if p.name != f"{name}.v")
    orders = [[f"{name}.vlt", f"{name}.v", *others],
              sorted(p.name for p in directory.glob("*.vlt"))
              + sorted(p.name for p in directory.glob("*.v"))]
    for files in orders:
        done = subprocess.run(["verilator", "--lint-only", "-Wall", *files], cwd=directory,
                              capture_output=True, text=True)
        if done.returncode or done.stdout or done.stderr:
            break
    return done


def flags(block_def, values: dict, scratch: Path) -> list[str]:
    """``values`` as ``cnn-ip block`` flags; arrays given from Python are saved to files."""
    out = []
    for param in block_def.params:
        if param.name not in values:
            continue
        value = values[param.name]
        if param.kind is bool:
            out.append(param.flag if value else "--no-" + param.flag[2:])
            continue
        if isinstance(value, np.ndarray):
            value = scratch / f"{param.name}.npy"
            np.save(value, values[param.name])
        elif isinstance(value, dict):
            value = scratch / f"{param.name}.npz"
            np.savez(value, **values[param.name])
        out += [param.flag, str(value)]
    return out


def on_command_line(value) -> bool:
    return isinstance(value, (int, bool, str, np.ndarray)) or (
        isinstance(value, dict) and all(isinstance(v, np.ndarray) for v in value.values()))


def variants(block_def) -> list[dict]:
    """Up to ``VARIANTS`` valid configurations, each the example with one parameter moved."""
    example = block_def.example()
    candidates = []
    for param in block_def.params:
        current = example.get(param.name, param.default)
        if param.kind is bool:
            moves = [not current]
        elif param.choices is not None:
            moves = [c for c in param.choices if c != current]
        elif param.kind is int:
            moves = [m for m in {param.lo, current + 1 if current is not None else None}
                     if m is not None and m != current and (param.hi is None or m <= param.hi)]
        else:
            moves = []
        candidates += [{**example, param.name: m} for m in sorted(moves, key=str)]
    random.Random(block_def.name).shuffle(candidates)
    chosen = []
    for values in candidates:
        try:
            block_def.prepared(**values)
        except (ParameterError, ValueError):
            continue
        chosen.append(values)
        if len(chosen) == VARIANTS:
            break
    return chosen


BLOCKS = {name: block_def for name, block_def in all_blocks().items()
          if all(on_command_line(v) for v in block_def.example().values())}


def test_every_block_is_covered():
    # Stages whose example holds a layer object are covered by `cnn-ip demo` only.
    assert set(registry(("blocks",))) <= set(BLOCKS)


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_generated_block_lints_clean_as_delivered(tmp_path, name):
    block_def = BLOCKS[name]
    configurations = variants(block_def)
    assert configurations, f"{name}: no valid configuration besides the example"
    for i, values in enumerate(configurations):
        out = tmp_path / str(i)
        argv = [sys.executable, "-m", "cnn_ip.cli", "block", name,
                *flags(block_def, values, tmp_path), "-o", str(out)]
        made = subprocess.run(argv, capture_output=True, text=True)
        assert made.returncode == 0, f"{' '.join(argv)}:\n{made.stderr}"
        linted = user_lint(out, name)
        messages = linted.stdout + linted.stderr
        assert linted.returncode == 0 and "%" not in messages, f"{values}:\n{messages}"


@pytest.mark.parametrize("argv", [
    ["mac_array", "--lanes", "2", "--simd", "2", "--weights", "int", "--wbits", "8",
     "--abits", "8", "--reduce", "8", "--target", "ecp5-85f"],
    ["tile_dma", "--data-bits", "128", "--max-burst", "64", "--outstanding", "4",
     "--target", "ecp5-85f"],
], ids=["mac_array-ecp5", "tile_dma-ecp5"])
def test_primitive_models_lint_with_the_block_in_any_order(tmp_path, argv):
    """Blocks built for ECP5 carry ``*_sim.v`` models of MULT18X18D / DP16KD; lint passes
    whichever order the user's shell gives the files in."""
    out = tmp_path / "out"
    made = subprocess.run([sys.executable, "-m", "cnn_ip.cli", "block", *argv, "-o", str(out)],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert list(out.glob("*_sim.v")), "the configuration writes no primitive model"
    linted = user_lint(out, argv[0])
    messages = linted.stdout + linted.stderr
    assert linted.returncode == 0 and "%" not in messages, messages
