"""Analytic estimates against real synthesis, and ECP5 Fmax, for every block and stage.

For every block in ``blocks.spec.registry()`` and every stage of ``assemblies/``, each
configuration in ``MATRIX`` (one without an entry: its ``example()``): generate the Verilog
(``cnn_ip.export.generate``), synthesize it for ``xc7vx485t`` (Yosys ``synth_xilinx`` cell
counts) and place and route it on ``ecp5-85f`` out of context at 200 MHz (Yosys
``synth_ecp5`` + nextpnr-ecp5), and compare with ``BlockDef.estimate``.  A block with a
``target`` parameter is generated twice: for ``generic`` (the Xilinx counts and the
estimate) and for ``ecp5-85f`` (placed on ECP5, with the device's primitives).  The ECP5
Fmax is placement seed 1's; a near miss (at least ``NEAR_MISS`` of the constraint) is
placed again with seeds 2 and 3 until one meets it, a configuration below ``FLOOR_MHZ``
until one reaches that, and the best is kept; the table names the seed.  A place-and-route that runs longer than ``--pnr-timeout`` is stopped and the
table says so.  Writes a Markdown table (default ``docs/estimates.md``) and prints its
headline and every configuration below 200 MHz.

    .venv/bin/python bench/block_costs.py                     # everything, docs/estimates.md
    .venv/bin/python bench/block_costs.py --blocks mac_array --output /tmp/mac.md
    .venv/bin/python bench/block_costs.py --reuse /tmp/a/results.json /tmp/b/results.json

``--reuse``: every configuration is generated, and one whose Verilog and ROM images (what
the flows read, hashed: the row's ``digest``) equal an earlier run's takes that run's
results instead of being placed again, so a rerun after a change places only the blocks
whose output changed.

Runs the configurations in a pool of at most two worker processes.  Scratch files go to
``--workdir`` (default: a directory under the system temp dir), never into the repository;
``WORKDIR/results.json`` (written as rows finish) is what ``--reuse`` reads.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import os
import re
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent     # only for the default output file

XILINX = "xc7vx485t"
ECP5 = "ecp5-85f"
CLOCK_MHZ = 200.0       # the paper's clock; every block should place at it on ECP5
SEEDS = (1, 2, 3)       # nextpnr placement seeds, tried in order until one meets CLOCK_MHZ
NEAR_MISS = 0.9         # ... for configurations this close to it (others: seed 1 only)
FLOOR_MHZ = 150.0       # ... and for those below it, until one reaches it (issue 14's floor)
LUT_FF_TOLERANCE_PCT = 20.0

# Parameters per docs/conventions.md Contract 5; values a layer of the paper's detectors or of the
# bundled examples would use.  Parameters left out take the block's defaults.
MATRIX = {
    "axis_register": [{"bits": 8}, {"bits": 64}, {"bits": 512}],
    "mac_array": [
        {"lanes": 8, "simd": 16, "weights": "binary", "abits": 4, "reduce": 576},
        {"lanes": 8, "simd": 16, "weights": "ternary", "abits": 4, "reduce": 576},
        {"lanes": 4, "simd": 8, "weights": "int", "wbits": 4, "abits": 4, "reduce": 576},
        {"lanes": 4, "simd": 8, "weights": "int", "wbits": 8, "abits": 8, "reduce": 1152},
        {"lanes": 4, "simd": 3, "weights": "int", "wbits": 8, "abits": 8, "asigned": True,
         "reduce": 27},                                     # first layer: signed input
    ],
    # Layers as (Cout, R = K*K*Cin) weight matrices at a given density of non-zeros;
    # the seeded random weights are made by weight_matrix().
    "sparse_decoder": [
        {"lanes": 4, "simd": 8, "weights": "ternary", "shape": (32, 72), "density": 0.2},
        {"lanes": 2, "simd": 8, "weights": "ternary", "shape": (32, 288), "density": 0.3},
        {"lanes": 4, "simd": 8, "weights": "int", "wbits": 4, "shape": (32, 144),
         "density": 0.25},
        {"lanes": 4, "simd": 8, "weights": "int", "wbits": 8, "shape": (16, 72),
         "density": 1.0},
        {"lanes": 4, "simd": 8, "weights": "binary", "shape": (32, 72), "density": 1.0},
        # A frame stage's decoder: the first configuration's layer, words from a stream.
        {"lanes": 4, "simd": 8, "weights": "ternary", "shape": (32, 72), "density": 0.2,
         "source": "stream"},
    ],
    "line_buffer": [
        {"width": 13, "height": 9, "channels": 8, "k": 3, "stride": 1, "pad": 1, "abits": 4,
         "simd": 4},
        {"width": 32, "height": 32, "channels": 16, "k": 3, "stride": 1, "pad": 1, "abits": 8,
         "simd": 4},
        {"width": 28, "height": 28, "channels": 1, "k": 5, "stride": 1, "pad": 0, "abits": 8,
         "simd": 1},
        {"width": 64, "height": 64, "channels": 8, "k": 2, "stride": 2, "pad": 0, "abits": 4,
         "simd": 8},
    ],
    "tile_dma": [
        {"data_bits": 32, "max_burst": 16, "outstanding": 2},
        {"data_bits": 64, "max_burst": 16, "outstanding": 4},
        {"data_bits": 128, "max_burst": 64, "outstanding": 4},
    ],
    # The example (four groups of about 100 72-bit words on a 64-bit bus, LUT RAM), and a
    # deep frame layer's: eight groups of about 250 136-bit words on a 128-bit bus, replayed
    # for a 13x13 map (block RAM, two banks of 256 words).
    # The example (16 channels: constants in LUTs) and a deep layer's 512 channels (128
    # words of constants: block RAM, read through its output register).
    "requant": [{}, {"channels": 512, "shift": 16}],
    "group_buffer": [{}, {"word_bits": 136, "bus_bits": 128, "depths": [250, 244, 256, 239,
                                                                        251, 248, 233, 255],
                          "passes": 169}],
}
# Stages (assemblies/, issue 14 item 5): each one's example(), a small layer of its kind.
STAGE_PACKAGES = ("blocks", "assemblies")


def configurations(block_def, overrides: list[dict]) -> list[dict]:
    """Full parameter sets: the block's example with each override applied on top.

    Starting from ``example()`` fills parameters the matrix does not write down; a
    ``shape``/``density`` pair becomes the weight matrix a ``weights_file`` parameter takes.
    """
    known = {p.name for p in block_def.params}
    base = block_def.example()
    out = []
    for override in overrides:
        values = {**base, **{k: v for k, v in override.items() if k in known}}
        if "shape" in override and "weights_file" in known:
            values["weights_file"] = weight_matrix(override["shape"], override["density"],
                                                   values["weights"], values.get("wbits", 8))
        if "channels" in override and "constants" in known:
            values["constants"] = requant_constants(override["channels"])
        if isinstance(override.get("depths"), list):
            values.update(group_layout(override["depths"], values["word_bits"],
                                       values["bus_bits"]))
        out.append(values)
    return out


def requant_constants(channels: int, seed=5) -> dict:
    """Seeded random requantization constants (bias, M, M_neg) for ``channels`` channels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    m = rng.integers(1, 1 << 12, size=channels)
    return {"bias": rng.integers(-3000, 3000, size=channels), "M": m, "M_neg": m // 8}


def group_layout(depths: list[int], word_bits: int, bus_bits: int, base=0x1000) -> dict:
    """``group_buffer``'s ``groups``/``depths`` for group images of ``depths`` words: each
    in whole bus beats, on a 64-byte boundary (as ``quant.offchip`` lays a layer out)."""
    from quant import offchip

    groups, address = [], base
    for depth in depths:
        size = offchip.beat_bytes(depth * word_bits, bus_bits // 8)
        groups.append([address, size])
        address += -(-size // offchip.ALIGN) * offchip.ALIGN
    return {"groups": json.dumps(groups), "depths": json.dumps(depths)}


def weight_matrix(shape, density, weights, wbits, seed=2021):
    """Seeded random weight values in the mode's range, ``density`` of them non-zero."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if weights == "binary":
        return rng.choice([-1, 1], size=shape).astype(np.int8)    # binary has no zero
    lo, hi = (-1, 1) if weights == "ternary" else (-(1 << (wbits - 1)), (1 << (wbits - 1)) - 1)
    values = rng.integers(lo, hi + 1, size=shape)
    values[values == 0] = 1
    return (values * (rng.random(shape) < density)).astype(np.int8)


def generate_one(index: int, name: str, values: dict, workdir: str) -> dict:
    """Write one configuration's Verilog; return its result row.

    Runs in a fresh interpreter of its own (see ``main``): MyHDL names the instances of a
    sub-block after the ones it converted before in the same process (``walk0``, then
    ``walk0_0_1``), so a configuration's Verilog depends on what was converted before it,
    unless nothing was; then it is the file ``cnn-ip block`` writes.  And a process
    started long ago could convert a block file edited since (MyHDL reads the source).
    """
    from myhdl import ToVerilogWarning

    from blocks.spec import registry

    # Unused ports and unread signals are the blocks' lint business (their .vlt), not this
    # table's: the warnings would bury the progress bars.
    warnings.simplefilter("ignore", ToVerilogWarning)
    from cnn_ip.export import generate

    out = Path(workdir) / f"{index:02d}-{name}"
    row = {"index": index, "block": name, "config": describe(values), "dir": str(out)}
    try:
        info = generate(registry(STAGE_PACKAGES)[name], out, **values)
    except Exception as error:            # a block that cannot be built is a result too
        row["error"] = f"generate: {error}"
        return row
    row["estimate"] = info["estimate"]
    row["verilog"] = str(out / info["verilog"])
    row["top"] = info["top"]
    row["ecp5_verilog"] = row["verilog"]
    if "target" in {p.name for p in registry(STAGE_PACKAGES)[name].params}:
        # The ECP5 placement uses the block as built for the device (its DSP primitive).
        try:
            info = generate(registry(STAGE_PACKAGES)[name], out / "ecp5-build", **{**values, "target": ECP5})
        except Exception as error:
            row["error"] = f"generate for {ECP5}: {error}"
            return row
        row["ecp5_verilog"] = str(out / "ecp5-build" / info["verilog"])
    row["digest"] = digest(out)
    return row


def digest(out: Path) -> str:
    """What the flows read of a generated configuration (its Verilog and ROM images, for
    both targets), the top's name and the flow settings, hashed: equal digests, equal
    synthesis and placement, so ``--reuse`` takes an earlier row instead of placing again.
    Sidecars and lint files are left out (an estimate changes them, not the netlist).

    A Verilog file counts as the sorted list of its lines, each sensitivity list sorted:
    MyHDL orders the statements of a reset branch and the signals of a sensitivity list by
    the signals' object identities, which differ from one process to the next, so the same
    block converts to differently ordered text (the same logic).  ROM images count byte
    for byte.  The flow settings include nextpnr-ecp5's options (``ECP5_PNR_ARGS``), so
    rows placed with other options do not stand for them."""
    from fpga.synth import ECP5_PNR_ARGS

    h = hashlib.sha256(f"{CLOCK_MHZ} {SEEDS} {NEAR_MISS} {FLOOR_MHZ} {ECP5_PNR_ARGS}\n".encode())
    files = [*out.glob("*"), *(out / "ecp5-build").glob("*")]   # not the flows' logs
    for path in sorted(p for p in files if p.is_file()):
        if path.suffix in (".json", ".vlt") or path.name.endswith("_sim.v"):
            continue
        h.update(f"{path.relative_to(out)}\n".encode())
        data = path.read_bytes()
        h.update(b"\n".join(sorted(map(sensitivity_sorted, data.splitlines())))
                 if path.suffix == ".v" else data)
    return h.hexdigest()


def sensitivity_sorted(line: bytes) -> bytes:
    """``always @(b, a) begin: x`` -> ``always @(a, b) begin: x`` (other lines as given)."""
    found = re.match(rb"(\s*always @\()([^()]*)(\).*)$", line)
    if found is None:
        return line
    names = sorted(name.strip() for name in found.group(2).split(b","))
    return found.group(1) + b", ".join(names) + found.group(3)


def synthesize_one(row: dict, pnr_timeout_s: float) -> dict:
    """Worker: synthesize one generated configuration on both targets.

    A Xilinx failure fails the row; an ECP5 failure (e.g. a place-and-route timeout) keeps
    the Xilinx counts and is noted in the row.
    """
    from fpga.synth import SynthError, synthesize

    row = dict(row, pnr_timeout_s=pnr_timeout_s)
    started = time.monotonic()
    try:
        row[XILINX] = synthesize([row["verilog"]], top=row["top"], target=XILINX,
                                 workdir=Path(row["dir"]) / XILINX)
    except SynthError as error:
        row["error"] = f"{XILINX}: {error}"
        return row
    row[f"{XILINX}_s"] = time.monotonic() - started
    started = time.monotonic()
    row["seeds"] = []
    for seed in SEEDS:
        try:
            report = synthesize([row["ecp5_verilog"]], top=row["top"], target=ECP5,
                                workdir=Path(row["dir"]) / f"{ECP5}-seed{seed}",
                                clock_mhz=CLOCK_MHZ, seed=seed, pnr_timeout_s=pnr_timeout_s)
        except SynthError as error:
            row["ecp5_error"] = f"{ECP5} seed {seed}: {error}"
            break
        fmax = report["timing"]["fmax_mhz"]
        row["seeds"].append((seed, fmax))
        if ECP5 not in row or (fmax or 0) > (row[ECP5]["timing"]["fmax_mhz"] or 0):
            row[ECP5], row["seed"] = report, seed
        if fmax is None or fmax >= CLOCK_MHZ or FLOOR_MHZ <= fmax < NEAR_MISS * CLOCK_MHZ:
            break
    row[f"{ECP5}_s"] = time.monotonic() - started
    row["measured_at"] = datetime.now(timezone.utc).strftime("%H:%M")
    return row


SYNTH_FIELDS = (XILINX, f"{XILINX}_s", ECP5, f"{ECP5}_s", "seeds", "seed", "ecp5_error",
                "pnr_timeout_s", "measured_at", "label", "tools", "error")


def reusable(row: dict, pnr_timeout_s: float) -> bool:
    """Whether an earlier run's row stands for a configuration of the same digest: it was
    synthesized, and it did not run out of a shorter place-and-route time than now."""
    if XILINX not in row or "digest" not in row:
        return False
    timed_out = "stopped after" in row.get("ecp5_error", "")
    return not (timed_out and row.get("pnr_timeout_s", 0) < pnr_timeout_s)


def reused(row: dict, earlier: dict) -> dict:
    """``row`` (freshly generated: its estimate is the block's current one) with the flows'
    results of ``earlier``."""
    out = {k: v for k, v in row.items() if k not in SYNTH_FIELDS}
    out.update({k: earlier[k] for k in SYNTH_FIELDS if k in earlier})
    out["reused"] = True
    return out


def describe(values: dict) -> str:
    text = " ".join(f"{k}={v}" for k, v in values.items()
                    if not k.endswith("file") and isinstance(v, (int, str, bool, float))
                    and not (k == "groups" and "depths" in values))   # addresses: noise
    layer = values.get("layer")
    if hasattr(layer, "in_shape"):          # a stage's layer (quant.reference.IntLayer)
        (cin, h, w), cout = layer.in_shape, layer.out_shape[0]
        text = (f"{layer.type} {h}x{w}x{cin}->{cout} k={layer.k} stride={layer.stride} "
                f"pad={layer.pad}" + (f" {layer.weights}" if layer.weights else "")
                + (f" act={layer.act}/{layer.act_bits}" if layer.act_bits else "")
                + (" " + text if text else ""))
    constants = values.get("constants")
    if isinstance(constants, dict):
        text += f" Cout={len(constants['bias'])}"
    matrix = values.get("weights_file")
    if hasattr(matrix, "shape"):
        text += (f" W={matrix.shape[0]}x{matrix.shape[1]}"
                 f" nonzero={(matrix != 0).mean():.0%}")
    return text


def error_pct(estimate, real) -> float | None:
    """Signed error of the estimate relative to the real count, in percent."""
    if real == 0:
        return 0.0 if estimate == 0 else math.inf
    return 100.0 * (estimate - real) / real


def discrepancies(row: dict) -> list[str]:
    """What breaks the bounds: LUT/FF beyond 20 %, DSP or BRAM not exact."""
    est, xil = row["estimate"], row[XILINX]
    found = []
    for key in ("lut", "ff"):
        err = error_pct(est[key], xil["used"][key])
        if abs(err) > LUT_FF_TOLERANCE_PCT:
            found.append(f"{key.upper()} {err:+.0f}%")
    if est["dsp"] != xil["used"]["dsp"]:
        found.append(f"DSP {est['dsp']} vs {xil['used']['dsp']}")
    if est["bram_bits"] != xil["memory_bits_declared"]:
        found.append(f"BRAM bits {est['bram_bits']} vs {xil['memory_bits_declared']}")
    return found


def fmt_pct(value) -> str:
    if value is None:
        return ""
    return "inf" if math.isinf(value) else f"{value:+.0f}%"


def table(rows: list[dict]) -> list[str]:
    head = ("| block | configuration | LUT est | LUT xc7 | err | FF est | FF xc7 | err "
            "| DSP est | DSP xc7 | BRAM bits est | memory bits | RAMB36 | ECP5 LUT4 | ECP5 FF "
            "| MULT18 | EBR | Fmax MHz (seed) | flow s | placed (UTC, code) | outside bounds |")
    lines = [head, "|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['block']} | {row['config']} | " + " | ".join([""] * 18)
                         + f" | failed: {row['error']} |")
            continue
        est, xil = row["estimate"], row[XILINX]
        ecp = row.get(ECP5) or {"used": dict.fromkeys(("lut", "ff", "dsp", "bram_blocks"), "-"),
                                "timing": {"fmax_mhz": None}}
        fmax = ecp["timing"]["fmax_mhz"]
        problems = discrepancies(row) + ([row["ecp5_error"]] if "ecp5_error" in row else []) \
            + (["placed as an earlier version (its Verilog has changed since; --no-place)"]
               if row.get("reused") == "stale" else [])
        cells = [
            row["block"], row["config"],
            est["lut"], xil["used"]["lut"], fmt_pct(error_pct(est["lut"], xil["used"]["lut"])),
            est["ff"], xil["used"]["ff"], fmt_pct(error_pct(est["ff"], xil["used"]["ff"])),
            est["dsp"], xil["used"]["dsp"],
            est["bram_bits"], xil["memory_bits_declared"], f"{xil['used']['bram_blocks']:g}",
            ecp["used"]["lut"], ecp["used"]["ff"], ecp["used"]["dsp"], ecp["used"]["bram_blocks"],
            "-" if fmax is None else f"{fmax:.0f} ({row['seed']})",
            f"{row[XILINX + '_s'] + row[ECP5 + '_s']:.0f}",
            " ".join(filter(None, (row.get("measured_at", "?"), row.get("label")))),
            ", ".join(problems) or "-",
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def headline(rows: list[dict]) -> list[str]:
    ok = [r for r in rows if "error" not in r]
    lines = []
    for key in ("lut", "ff"):
        errors = [(abs(error_pct(r["estimate"][key], r[XILINX]["used"][key])), r) for r in ok]
        if errors:
            worst, r = max(errors, key=lambda e: e[0])
            lines.append(f"- worst {key.upper()} estimate error: "
                         f"{fmt_pct(error_pct(r['estimate'][key], r[XILINX]['used'][key]))} "
                         f"({r['block']} {r['config']})")
    dsp_bad = [r for r in ok if r["estimate"]["dsp"] != r[XILINX]["used"]["dsp"]]
    bram_bad = [r for r in ok if r["estimate"]["bram_bits"] != r[XILINX]["memory_bits_declared"]]
    lines.append(f"- DSP estimate exact in {len(ok) - len(dsp_bad)} of {len(ok)} configurations"
                 + (": off in " + "; ".join(f"{r['block']} {r['config']}" for r in dsp_bad)
                    if dsp_bad else ""))
    lines.append(f"- BRAM bits estimate equal to the declared memory in "
                 f"{len(ok) - len(bram_bad)} of {len(ok)} configurations"
                 + (": off in " + "; ".join(f"{r['block']} {r['config']}" for r in bram_bad)
                    if bram_bad else ""))
    in_luts = [r for r in ok if r[XILINX]["memory_bits_declared"] and not r[XILINX]["used"]["bram_blocks"]]
    if in_luts:
        lines.append("- memory that synth_xilinx put in LUTs, not block RAM: "
                     + "; ".join(f"{r['block']} {r['config']} ({r[XILINX]['memory_bits_declared']}"
                                 f" bits, {r[XILINX]['used']['lut_as_memory']} LUT-RAM sites)"
                                 for r in in_luts))
    ecp5_dsp = [r for r in ok if ECP5 in r and r[ECP5]["used"]["dsp"] != r["estimate"]["dsp"]]
    if ecp5_dsp:
        lines.append("- ECP5 multipliers differ from the DSP estimate (which counts Xilinx "
                     "DSP48s) in: " + "; ".join(
                         f"{r['block']} {r['config']} ({r[ECP5]['used']['dsp']} MULT18X18D vs "
                         f"{r['estimate']['dsp']})" for r in ecp5_dsp))
    return lines


def timing_notes(rows: list[dict]) -> list[str]:
    """Every configuration below ``CLOCK_MHZ`` on ECP5 with nextpnr's critical path, every
    one without an Fmax, then the lowest Fmax of each block that meets it everywhere."""
    placed = [r for r in rows if "error" not in r and ECP5 in r
              and r[ECP5]["timing"]["fmax_mhz"] is not None]
    lines = []
    for r in sorted((r for r in placed if r[ECP5]["timing"]["fmax_mhz"] < CLOCK_MHZ),
                    key=lambda r: r[ECP5]["timing"]["fmax_mhz"]):
        lines.append(f"- **{r['block']}** {r['config']}: " + path_note(r))
    for r in rows:
        if "ecp5_error" in r:
            lines.append(f"- **{r['block']}** {r['config']}: no Fmax, {r['ecp5_error']}")
    missing = {r["block"] for r in rows if "ecp5_error" in r or "error" in r
               or r not in placed or r[ECP5]["timing"]["fmax_mhz"] < CLOCK_MHZ}
    meeting = {}
    for r in placed:
        if r["block"] not in missing:
            meeting.setdefault(r["block"], []).append(r)
    if meeting:
        lines.append(f"- at or above {CLOCK_MHZ:g} MHz in every configuration (lowest): "
                     + "; ".join(f"{block} {min(r[ECP5]['timing']['fmax_mhz'] for r in rs):.0f}"
                                 for block, rs in meeting.items()))
    return lines


def path_note(r: dict) -> str:
    t = r[ECP5]["timing"]
    path = t["critical_path"] or {}
    tried = ", ".join(f"seed {s}: {f:.0f}" for s, f in r["seeds"] if f is not None)
    return (f"{t['fmax_mhz']:.0f} MHz ({tried}); critical path {path.get('start', '?')} -> "
            f"{path.get('end', '?')}, {path.get('logic_levels', '?')} logic levels, "
            f"{path.get('logic_ns', 0):.2f} ns logic + {path.get('routing_ns', 0):.2f} ns "
            "routing" + (f" ({', '.join(path['sources'][:5])})" if path.get("sources") else ""))


def markdown(rows: list[dict], skipped: list[str], tools: dict, wall_s: float,
             jobs: int = 2) -> str:
    from fpga.synth import ECP5_PNR_ARGS

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    now = [r for r in rows if XILINX in r and not r.get("reused")]
    same = [r for r in rows if r.get("reused") is True]
    old = sorted({r["block"] for r in rows if r.get("reused") == "block"})
    stale = [r for r in rows if r.get("reused") == "stale"]
    parts = [
        "# Block estimates against synthesis",
        "",
        "Generated by `bench/block_costs.py` (do not edit by hand). Regenerate with",
        "",
        "    nice -n 10 .venv/bin/python bench/block_costs.py      # writes docs/estimates.md",
        "",
        f"Made {stamp}: {len(now)} configurations placed by this run ({wall_s:.0f} s wall "
        f"time, {jobs} worker process{'es' if jobs > 1 else ''}, a machine shared with other "
        "work)"
        + (f"; {len(same)} taken from earlier runs of this bench (`--reuse`) because what "
           "the flows read of them (Verilog, ROM images) is unchanged" if same else "")
        + (f"; the rows of {', '.join(old)} come from earlier runs as they were (not "
           "regenerated)" if old else "")
        + (f"; {len(stale)} ({', '.join(sorted({r['block'] for r in stale}))}) are of an "
           "earlier version of their block, placed before its last change (their *outside "
           "bounds* says so)" if stale else "")
        + f". *placed* gives the time (UTC, {stamp[:10]}) and the code (`--label`) of each "
        f"row's placement. Tools: {tools}.",
        "",
        "Stages (`assemblies/`: conv_row, conv_frame, maxpool_stage) are measured the same "
        "way as blocks, each in its `example()` configuration (a small layer of its kind).",
        "",
        f"- *est*: the block's analytic `estimate`. *xc7*: Yosys `synth_xilinx` cell counts "
        f"for {XILINX} — synthesis counts, not Vivado's (LUT = LUT1-6 + INV + LUT-RAM sites; "
        f"FF = FDRE/FDSE/FDCE/FDPE). *err* = (est - xc7) / xc7.",
        "- *memory bits*: bits of the memories the Verilog declares (Yosys `stat` after "
        "elaboration), the figure `bram_bits` is held against; *RAMB36* the 36 Kb block "
        "RAMs synth_xilinx mapped them to (RAMB18 = 0.5).",
        f"- *ECP5*: {ECP5} after out-of-context place-and-route at {CLOCK_MHZ:g} MHz "
        f"(nextpnr-ecp5 `{' '.join(ECP5_PNR_ARGS)}`; its `--report`: TRELLIS_COMB, "
        "TRELLIS_FF, MULT18X18D, DP16KD, Fmax); "
        f"Fmax from placement seed 1; a near miss (at least {NEAR_MISS:.0%} of the constraint) "
        f"is placed again with seeds {', '.join(map(str, SEEDS[1:]))} until one meets it, and "
        f"so is a configuration below {FLOOR_MHZ:g} MHz until one reaches that, the "
        "best kept (the seed that gave it in brackets). A block "
        f"with a `target` parameter is placed as generated for {ECP5} (its DSP primitive), "
        "counted on xc7 as generated for `generic`.",
        f"- *outside bounds*: LUT or FF error beyond {LUT_FF_TOLERANCE_PCT:g} %, DSP or "
        "BRAM bits not exact, or no Fmax (a place-and-route stopped after the bench's "
        "`--pnr-timeout`, or failed: the reason is given). *flow s*: wall time of both "
        "flows for the configuration (on a loaded machine: a cost, not a benchmark).",
        "",
        "## Headline",
        "",
        *headline(rows),
        "",
        "## Table",
        "",
        *table(rows),
        "",
        f"## Timing on ECP5 (every configuration below {CLOCK_MHZ:g} MHz)",
        "",
        *timing_notes(rows),
        "",
    ]
    if skipped:
        parts += ["## Not yet measured", "",
                  *(f"- {name}: not in the block registry when this table was made"
                    for name in skipped), ""]
    return "\n".join(parts)


KEPT_MARK = "kept by hand"


def kept_by_hand(path: Path) -> str:
    """The sections of the existing output whose heading says they are kept by hand (to
    the end of the file): a regeneration keeps them."""
    if not path.exists():
        return ""
    text = path.read_text()
    for match in re.finditer(r"^## .*$", text, flags=re.M):
        if KEPT_MARK in match.group(0):
            return "\n" + text[match.start():]
    return ""


def code_label() -> str:
    """The repository's commit (``+`` when its tracked files differ from it), if any."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "blocks",
                                "assemblies", "quant"], cwd=ROOT).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return ""
    return head + ("+" if dirty else "")


def load_earlier(paths: list[str]) -> list[dict]:
    """Rows of earlier ``results.json`` files (names or glob patterns, read when called),
    the most recently written first (they win)."""
    import glob

    found = {Path(p) for pattern in paths for p in (glob.glob(pattern) or [pattern])}
    rows = []
    for path in sorted(found, key=lambda p: -p.stat().st_mtime):
        rows += json.loads(path.read_text())
    return rows


def save(results: Path, rows: list[dict]) -> None:
    """Write ``results.json`` whole or not at all: another run may be reading it."""
    scratch = results.with_name(f".{results.name}.tmp")
    scratch.write_text(json.dumps(rows, indent=1, default=str))
    os.replace(scratch, results)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", nargs="*", default=None,
                        help="only these blocks (and stages)")
    parser.add_argument("--output", default=str(ROOT / "docs" / "estimates.md"))
    parser.add_argument("--workdir", default=None, help="scratch directory (default: temp)")
    parser.add_argument("--jobs", type=int, default=2, choices=(1, 2))
    parser.add_argument("--reuse", nargs="*", default=[], metavar="RESULTS",
                        help="results.json of earlier runs: a configuration whose generated "
                             "Verilog and ROM images equal an earlier row's (same digest) "
                             "takes that row's results instead of being placed again; the "
                             "rows of blocks not measured now (--blocks) go into the table "
                             "as they were.  A file written later wins; a glob pattern "
                             "(quoted) is expanded when the files are read.  With "
                             "--blocks and no names, the table is made from these alone")
    parser.add_argument("--pnr-timeout", type=float, default=900, metavar="S",
                        help="stop an ECP5 place-and-route after S seconds (default 900); "
                             "a row that ran out of a shorter time is placed again")
    parser.add_argument("--no-place", action="store_true",
                        help="place nothing: a configuration without an earlier result of "
                             "the same digest takes the latest earlier one of the same "
                             "configuration, marked as placed on an earlier version")
    parser.add_argument("--label", default=None,
                        help="the code measured, for the table (default: the git commit)")
    args = parser.parse_args(argv)

    from blocks.spec import registry
    from fpga.synth import TOOLS, find_tool, tool_version

    known = registry(STAGE_PACKAGES)
    wanted = list(known) if args.blocks is None else args.blocks
    jobs, skipped = [], []
    for name in wanted:
        if name not in known:
            print(f"skipping {name}: not in the block registry yet", file=sys.stderr)
            skipped.append(name)
            continue
        for values in configurations(known[name], MATRIX.get(name, [{}])):
            jobs.append((name, values))
    tools = "; ".join(sorted({tool_version(find_tool(t)) for f in ("xilinx", "ecp5")
                              for t in TOOLS[f].values()}))
    label = code_label() if args.label is None else args.label
    workdir = args.workdir or tempfile.mkdtemp(prefix="cnn_ip-bench-")
    Path(workdir).mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    fresh = multiprocessing.get_context("spawn")     # one new interpreter a configuration
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=fresh,
                             max_tasks_per_child=1) as pool:
        futures = [pool.submit(generate_one, i, name, values, workdir)
                   for i, (name, values) in enumerate(jobs)]
        generated = [f.result() for f in tqdm(futures, desc="generating", unit="config")]
    # Read after generating: other runs may have finished rows meanwhile.
    earlier = load_earlier(args.reuse)
    by_digest = {}     # the same netlist through the same tools: the same results
    for r in earlier:
        if reusable(r, args.pnr_timeout) and r.get("tools") == tools:
            by_digest.setdefault(r["digest"], r)
    rows = [row for row in generated if "error" in row]
    todo = []
    for row in generated:
        if "error" in row:
            continue
        hit = by_digest.get(row["digest"])
        if hit is not None:
            rows.append(reused(row, hit))
        elif args.no_place:
            same = sorted((r for r in earlier if r["block"] == row["block"]   # latest first
                           and r["config"] == row["config"] and XILINX in r
                           and not r.get("reused")),
                          key=lambda r: r.get("measured_at", ""), reverse=True)
            rows.append({**reused(row, same[0]), "reused": "stale"} if same else
                        {**row, "error": "not placed (--no-place) and no earlier result"})
        else:
            todo.append({**row, "label": label, "tools": tools})
    if args.reuse:
        print(f"{sum(1 for r in rows if r.get('reused') is True)} configurations unchanged "
              f"since an earlier run (--reuse): not placed again; {len(todo)} to place",
              file=sys.stderr)
    results = Path(workdir) / "results.json"
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        # Largest first, so that the two workers finish together.
        todo.sort(key=lambda row: -row["estimate"]["lut"])
        futures = {pool.submit(synthesize_one, row, args.pnr_timeout): row for row in todo}
        for future in tqdm(as_completed(futures), total=len(futures), desc="synthesizing",
                           unit="config"):
            try:
                rows.append(future.result())
            except Exception as error:     # a crashed worker: the row says so, the rest runs
                rows.append({**futures[future], "error": f"flow: {type(error).__name__}: "
                                                         f"{error}"})
            # Saved as it goes: a long run stopped early still leaves rows to --reuse.
            save(results, rows)
    measured = {name for name, _ in jobs}
    by_block = {}    # the latest results file's rows of a block not measured now
    for r in earlier:
        if r["block"] not in measured and r["block"] in known:
            by_block.setdefault(r["block"], {}).setdefault(r["config"], r)
    old = [r for block_rows in by_block.values() for r in block_rows.values()]
    rows += [{**r, "index": len(jobs) + i, "reused": "block"} for i, r in enumerate(old)]
    rows.sort(key=lambda r: (list(known).index(r["block"]), r["index"]))
    text = markdown(rows, skipped, tools, time.monotonic() - started, jobs=args.jobs)
    Path(args.output).write_text(text + kept_by_hand(Path(args.output)))
    # The full reports (cells by type, critical paths) for anyone digging further.
    save(results, rows)
    print("\n".join(headline(rows)))
    print("\n".join(timing_notes(rows)))
    print(f"wrote {args.output} (scratch in {workdir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
