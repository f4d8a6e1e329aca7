"""``cnn-ip synth DIR --target NAME [--clock-mhz F] [--top T]``: synthesize a block's Verilog.

``DIR`` is what ``cnn-ip block`` wrote: the Verilog, any ROM files and the JSON sidecar
whose ``top`` names the module (``--top`` overrides it, or stands in when there is no
sidecar; then every ``DIR/*.v`` is read except the simulation models ``*_sim.v``).  Prints used vs available resources with the
utilisation, and for ECP5/iCE40 the place-and-route Fmax against the clock constraint;
writes ``DIR/synth_report.json``.  Tool logs stay beside it (``synth_yosys.log``,
``synth_nextpnr.log``).  See ``docs/fpga.md``.
"""
from __future__ import annotations

import json
from pathlib import Path

from cnn_ip.errors import UserError
from fpga.devices import DEVICES
from fpga.synth import SynthError, is_sim_model, synthesize

REPORT_NAME = "synth_report.json"


def register(subparsers) -> None:
    parser = subparsers.add_parser("synth", help="synthesize (and place and route) a block's "
                                   "Verilog with open tools; report resources and Fmax")
    parser.add_argument("dir", metavar="DIR", help="directory written by `cnn-ip block`")
    parser.add_argument("--target", required=True, metavar="NAME",
                        help="device: " + ", ".join(DEVICES))
    parser.add_argument("--clock-mhz", type=float, default=None, metavar="F",
                        help="clock constraint for place-and-route (default: 150 on ECP5, "
                             "50 on iCE40)")
    parser.add_argument("--top", default=None, metavar="T",
                        help="top module (default: `top` from DIR's JSON sidecar)")
    parser.set_defaults(run=run)


def run(args) -> int:
    directory = Path(args.dir)
    if not directory.is_dir():
        raise UserError(f"synth: {args.dir}: no such directory")
    if args.target not in DEVICES:
        raise UserError(f"synth: --target: unknown device {args.target!r} "
                        f"(known: {', '.join(DEVICES)})")
    if args.clock_mhz is not None and not 0 < args.clock_mhz <= 1000:
        raise UserError(f"synth: --clock-mhz: must be in (0, 1000], got {args.clock_mhz:g}")
    top, sources = find_design(directory, args.top)
    try:
        report = synthesize(sources, top=top, target=args.target, workdir=directory,
                            clock_mhz=args.clock_mhz)
    except SynthError as error:
        raise UserError(f"synth: {error}") from None
    try:
        (directory / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    except OSError as error:
        raise UserError(f"synth: {directory}: cannot write {REPORT_NAME}: "
                        f"{error.strerror or error}") from None
    print(format_report(report))
    print(f"wrote {directory / REPORT_NAME}")
    return 0


def find_design(directory: Path, top: str | None) -> tuple[str, list[Path]]:
    """``(top, Verilog files)`` from the sidecar in ``directory`` or from ``--top``."""
    sidecars = []
    for path in sorted(directory.glob("*.json")):
        if path.name == REPORT_NAME:
            continue
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and isinstance(info.get("top"), str):
            sidecars.append((path, info))
    if top is not None:
        sidecars = [(p, i) for p, i in sidecars if i["top"] == top]
    if len(sidecars) > 1:
        names = ", ".join(p.name for p, _ in sidecars)
        raise UserError(f"synth: {directory}: several sidecars name a top ({names}); "
                        f"choose one with --top")
    if sidecars:
        path, info = sidecars[0]
        name = info.get("verilog", f"{info['top']}.v")
        if not isinstance(name, str) or not name:
            raise UserError(f"synth: {path}: verilog: must name a file, got {name!r}")
        verilog = directory / name
        if not verilog.is_file():
            raise UserError(f"synth: {path}: names Verilog {verilog.name}, which is missing")
        return info["top"], [verilog]
    if top is None:
        raise UserError(f"synth: {directory}: no JSON sidecar with a \"top\"; "
                        f"give the module with --top")
    verilog = [v for v in sorted(directory.glob("*.v")) if not is_sim_model(v)]
    if not verilog:
        raise UserError(f"synth: {directory}: no Verilog files (*.v)")
    return top, verilog


def format_report(report: dict) -> str:
    """The printed table: resource, used, available, utilisation; then timing."""
    lines = [f"{report['top']} on {report['target']} ({report['device']['part']}): "
             f"{report['counts']}",
             f"{'resource':<12}{'used':>10}{'available':>12}{'util %':>9}"]
    names = {"lut": "LUT", "ff": "FF", "dsp": "DSP", "bram_blocks": "BRAM blocks"}
    for key, label in names.items():
        used, available = report["used"][key], report["available"][key]
        pct = report["utilisation_pct"][key]
        lines.append(f"{label:<12}{used:>10g}{available:>12g}{pct:>9.2f}")
    lines.append(f"{'BRAM bits':<12}{report['used']['bram_bits']:>10.0f}"
                 f"{report['available']['bram_bits']:>12.0f}"
                 f"   ({report['memory_bits_declared']} bits of memory declared)")
    timing = report["timing"]
    if timing is not None:
        if timing["fmax_mhz"] is None:
            lines.append("timing: no clocked paths")
        else:
            verdict = "met" if timing["met"] else "NOT met"
            lines.append(f"Fmax {timing['fmax_mhz']:.1f} MHz vs constraint "
                         f"{timing['constraint_mhz']:g} MHz: {verdict}")
            path = timing["critical_path"]
            if path:
                lines.append(f"critical path: {path['start']} -> {path['end']}, "
                             f"{path['logic_levels']} logic levels, {path['logic_ns']:.2f} ns "
                             f"logic + {path['routing_ns']:.2f} ns routing"
                             + (f" ({', '.join(path['sources'][:4])})" if path["sources"] else ""))
    tools = "; ".join(t["version"] for t in report["tools"].values())
    lines.append(f"tools: {tools}; wall time {report['wall_s']['total']:.1f} s")
    return "\n".join(lines)
