"""Co-simulation harness: one MyHDL test bench drives the MyHDL model or its converted Verilog.

* :func:`myhdl_vpi` builds MyHDL's Icarus VPI module once into the user cache directory
  (``$XDG_CACHE_HOME/cnn_ip`` or ``~/.cache/cnn_ip``), never into the repository.
* :func:`dut` returns the device under test for ``hdl="myhdl"`` (the ``@block`` itself) or
  ``hdl="icarus"`` (the converted Verilog compiled by Icarus and wrapped in a MyHDL
  ``Cosimulation``), wired to the same test-bench signals.
* :func:`run_streams` is the test bench for blocks whose ports are streams: it drives
  every input stream from a seeded source with random idle cycles, drains every output
  stream into a seeded sink with random back-pressure, watches the AXI stability rule on
  all of them, and returns the beats with the cycle each moved on.  The sources, sinks
  and monitors are ``cnn_ip.simkit``'s.
* :func:`lint` runs the user's lint command (``verilator --lint-only -Wall NAME.vlt
  NAME.v``, see ``cnn_ip.export``) and fails on any message.
"""
from __future__ import annotations

import fcntl
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import myhdl
from myhdl import Cosimulation, SignalType, StopSimulation, block, instance

from blocks.spec import BlockDef
from blocks.stream import Axis
from cnn_ip.export import (ToolMissing, lint_command, require, verilator_messages,  # noqa: F401
                           write_verilog)
from cnn_ip.simkit import (PERIOD, RESET_CYCLES, axis_monitor, axis_sink, axis_source,  # noqa: F401
                           clock_reset_driver)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(base) / "cnn_ip"
    path.mkdir(parents=True, exist_ok=True)
    return path


def myhdl_vpi() -> Path:
    """Path of ``myhdl.vpi``, built once from the sources MyHDL installs (process-safe)."""
    target = cache_dir() / f"myhdl-{myhdl.__version__}" / "myhdl.vpi"
    if target.exists():
        return target
    require("iverilog-vpi")
    sources = Path(sys.prefix) / "share" / "myhdl" / "cosimulation" / "icarus"
    if not (sources / "myhdl.c").exists():
        raise ToolMissing(f"MyHDL's Icarus VPI sources are missing under {sources}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            with tempfile.TemporaryDirectory(dir=target.parent) as build:
                for name in ("myhdl.c", "myhdl_table.c"):
                    shutil.copy(sources / name, build)
                subprocess.run(["iverilog-vpi", "myhdl.c", "myhdl_table.c"], cwd=build,
                               check=True, capture_output=True)
                os.replace(Path(build) / "myhdl.vpi", target)
    return target


def port_signals(ports: dict) -> dict:
    """Flatten ``{argument: Signal or Axis}`` into HDL port names, as MyHDL's converter does."""
    flat = {}
    for name, port in ports.items():
        if isinstance(port, Axis):
            for attr in ("tdata", "tvalid", "tready", "tlast"):
                if getattr(port, attr) is not None:
                    flat[f"{name}_{attr}"] = getattr(port, attr)
        elif hasattr(port, "__dict__") and not isinstance(port, SignalType):
            for attr, sig in vars(port).items():
                if isinstance(sig, SignalType):
                    flat[f"{name}_{attr}"] = sig
        else:
            flat[name] = port
    return flat


def compile_icarus(workdir: Path, sources: list[str], top: str) -> Path:
    """Compile ``sources`` (names relative to ``workdir``, each once) into ``sim.vvp``."""
    require("iverilog")
    out = workdir / "sim.vvp"
    sources = list(dict.fromkeys(str(source) for source in sources))
    result = subprocess.run(["iverilog", "-g2012", "-o", str(out), "-s", top, *sources],
                            cwd=workdir, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"iverilog failed in {workdir}:\n{result.stderr}")
    return out


@block
def dut(block_def: BlockDef, ports: dict, *, hdl: str, workdir=None, args: dict | None = None,
        **values):
    """The block wired to ``ports``: the MyHDL model or its Verilog under Icarus.

    The block's parameters come as ``**values`` (validated and prepared here) or, already
    prepared, as ``args`` (``BlockDef.prepared``), so that files are read once.

    A ``@block`` so that test benches instantiate it like any other block.

    ``workdir`` receives the converted Verilog, the ROM files and ``sim.vvp``; the
    simulator runs there so relative ``$readmemh`` paths resolve as from the CLI's output.
    """
    if args is None:
        _, args = block_def.prepared(**values)
    if hdl == "myhdl":
        return block_def.build(**ports, **args)
    if hdl != "icarus":
        raise ValueError(f"hdl: must be 'myhdl' or 'icarus', got {hdl!r}")
    workdir = Path(workdir or tempfile.mkdtemp(prefix="cnn_ip-cosim-"))
    write_verilog(block_def, workdir, args, testbench=True)
    block_def.write_files(args, str(workdir))
    name = block_def.name
    # The vendor-primitive models the block wrote beside its Verilog (``*_sim.v``) are
    # simulated with it, as any simulator run on the directory would.
    models = sorted(path.name for path in workdir.glob("*_sim.v"))
    add_x_check(workdir / f"tb_{name}.v")
    compile_icarus(workdir, [f"{name}.v", f"tb_{name}.v", *models], f"tb_{name}")
    return icarus_run(workdir, ports)


X_FILE = "x_outputs.txt"


def add_x_check(testbench: Path) -> None:
    """Make MyHDL's co-simulation wrapper ``testbench`` write to ``X_FILE`` (beside it) every
    X or Z the design drives after reset: on a stream's ``tdata``/``tlast`` while its
    ``tvalid`` is high, on any other output at any time.  MyHDL reads an X from Icarus as
    0 (or as the signal's initial value), so a test bench comparing values would take it
    for a correct zero; :func:`x_outputs` reads the file after the run."""
    text = testbench.read_text()
    if not all(re.search(rf"^reg {port};$", text, re.M) for port in ("aclk", "aresetn")):
        return          # a part without the stream clock and reset (a RAM, a ROM)
    found = re.search(r"\$to_myhdl\((.*?)\);", text, re.S)
    outputs = [name.strip() for name in found.group(1).split(",")] if found else []
    checks = []
    for name in outputs:
        valid = name.rsplit("_", 1)[0] + "_tvalid"
        when = (f"{valid} === 1'b1 && " if name.endswith(("_tdata", "_tlast"))
                and valid in outputs else "")
        checks.append(f"    if (aresetn === 1'b1 && {when}^{name} === 1'bx) begin\n"
                      f"        $fdisplay(x_file, \"%0t {name} %b\", $time, {name});\n"
                      f"        $fflush(x_file);\n    end")
    code = ("integer x_file;\ninitial x_file = $fopen(\"" + X_FILE + "\", \"w\");\n"
            "always @(negedge aclk) begin\n" + "\n".join(checks) + "\nend\n")
    testbench.write_text(text.replace("\nendmodule", "\n" + code + "endmodule", 1))


def x_outputs(workdir: Path) -> list[str]:
    """The X/Z lines :func:`add_x_check`'s wrapper wrote (time, output, value)."""
    path = Path(workdir) / X_FILE
    return path.read_text().splitlines() if path.exists() else []


def icarus_run(workdir: Path, ports: dict):
    """The ``sim.vvp`` compiled in ``workdir``, run by Icarus in lock step with MyHDL on
    ``ports``."""
    command = f"cd {shlex.quote(str(workdir))} && exec vvp -n -m {shlex.quote(str(myhdl_vpi()))} sim.vvp"
    # A list, not a string: MyHDL splits string commands on spaces.
    return Cosimulation(["sh", "-c", command], **port_signals(ports))


def part_dut(make, ports: dict, fresh: dict, *, hdl: str, workdir, name: str = "top",
             models=()):
    """A part with no ``BlockDef`` (a ``@block`` function ``make`` of the port names) wired
    to ``ports``: ``make(**ports)`` in MyHDL, or ``make(**fresh)`` (the same ports, other
    signals: conversion takes them over) converted as ``name`` and run under Icarus with
    ``models`` (file names in ``workdir``, e.g. vendor-primitive models)."""
    if hdl == "myhdl":
        return make(**ports)
    if hdl != "icarus":
        raise ValueError(f"hdl: must be 'myhdl' or 'icarus', got {hdl!r}")
    workdir = Path(workdir)
    make(**fresh).convert(hdl="Verilog", path=str(workdir), name=name, testbench=True)
    compile_icarus(workdir, [f"{name}.v", f"tb_{name}.v", *models], f"tb_{name}")
    return icarus_run(workdir, ports)


def run_streams(block_def: BlockDef, *, params: dict, hdl: str = "myhdl", workdir=None,
                inputs: dict, expect: dict, seed: int = 0, idle: float | dict = 0.0,
                stall: float | dict = 0.0, max_cycles: int = 200_000,
                drain: int = 32) -> dict:
    """Run ``block_def`` with stream stimulus and return what its outputs produced.

    params:  the block's parameters (validated as ``cnn-ip block`` does); everything
             else is an option of the harness.

    inputs:  ``{input port: [(tdata, tlast), ...]}``.
    expect:  ``{output port: number of beats}``; the run stops ``drain`` cycles after all
             arrived (so extra beats are caught) or fails at ``max_cycles``.
    idle, stall: probability of an idle cycle per source / a not-ready cycle per sink,
             one number for all streams or a dict by port name.
    Returns ``{port: [Beat, ...], "cycles": total cycles}`` for every output port and
    every input port (the beats as they moved, with the cycle of each, for latency and
    rate measurements); raises ``AssertionError`` on a protocol violation or a timeout.
    """
    _, args = block_def.prepared(**params)
    ports = block_def.ports(**args)
    aclk, aresetn = ports["aclk"], ports["aresetn"]
    if hdl == "icarus":
        workdir = Path(workdir or tempfile.mkdtemp(prefix="cnn_ip-cosim-"))
    received = {name: [] for name in expect}
    sent = {name: [] for name in inputs}
    errors: list[str] = []
    rate = lambda value, name: value.get(name, 0.0) if isinstance(value, dict) else value
    state = {"cycles": None}

    @block
    def bench():
        parts = [clock_reset_driver(aclk, aresetn),
                 dut(block_def, ports, hdl=hdl, args=args, workdir=workdir)]
        for i, (name, beats) in enumerate(sorted(inputs.items())):
            parts.append(axis_source(aclk, aresetn, ports[name], beats, seed=seed * 7919 + i,
                                     idle=rate(idle, name), period=PERIOD, moved=sent[name]))
        for i, name in enumerate(sorted(expect)):
            parts.append(axis_sink(aclk, aresetn, ports[name], received[name],
                                   seed=seed * 104729 + i, stall=rate(stall, name),
                                   period=PERIOD))
        for name, port in ports.items():
            if isinstance(port, Axis):
                parts.append(axis_monitor(aclk, aresetn, port, errors, label=name,
                                          period=PERIOD))

        @instance
        def stopper():
            done_at = None
            for cycle in range(max_cycles):
                yield aclk.posedge
                if done_at is None and all(len(received[k]) >= n for k, n in expect.items()):
                    done_at = cycle
                if done_at is not None and cycle - done_at >= drain:
                    state["cycles"] = cycle
                    break
            raise StopSimulation

        return parts, stopper

    tb = bench()
    tb.run_sim(quiet=True)
    if state["cycles"] is None:
        got = {k: len(v) for k, v in received.items()}
        raise AssertionError(f"{block_def.name} ({hdl}): timeout after {max_cycles} cycles; "
                             f"received {got}, expected {expect}")
    assert not errors, f"{block_def.name} ({hdl}): AXI stability violated: {errors[:3]}"
    if hdl == "icarus" and (unknown := x_outputs(workdir)):
        raise AssertionError(f"{block_def.name} (icarus): X or Z on an output after reset "
                             f"(time, port, value): {unknown[:3]}")
    return {**sent, **received, "cycles": state["cycles"]}


def lint(verilog, top: str, waivers=None) -> list[str]:
    """Lint as a user does: ``verilator --lint-only -Wall TOP.vlt TOP.v ...`` in the directory.

    The command is ``cnn_ip.export.lint_command``: the ``TOP.vlt`` written beside the
    Verilog (if there is one) and every ``.v`` file of the directory.  Raises
    ``AssertionError`` with Verilator's output unless it exits 0 without a message.
    Returns the ``lint_off`` lines of ``TOP.vlt`` (the waivers in force), so that a test
    can also require that none was needed.  ``waivers`` is accepted for old callers and
    ignored: waivers live in the ``.vlt``, line by line.
    """
    directory = Path(verilog).parent
    status, messages, output = verilator_messages(directory, lint_command(directory, top))
    if status != 0 or messages:
        raise AssertionError(f"verilator lint of {verilog}:\n{output.strip()}")
    vlt = directory / f"{top}.vlt"
    text = vlt.read_text() if vlt.exists() else ""
    return [line for line in text.splitlines() if line.startswith("lint_off")]
