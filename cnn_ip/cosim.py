"""Co-simulation harness: one MyHDL test bench drives the MyHDL model or its converted Verilog.

* :func:`myhdl_vpi` builds MyHDL's Icarus VPI module once into the user cache directory
  (``$XDG_CACHE_HOME/cnn_ip`` or ``~/.cache/cnn_ip``), never into the repository.
* :func:`dut` returns the device under test for ``hdl="myhdl"`` (the ``@block`` itself) or
  ``hdl="icarus"`` (the converted Verilog compiled by Icarus and wrapped in a MyHDL
  ``Cosimulation``), wired to the same test-bench signals.
* :func:`run_streams` is the test bench for blocks whose ports are streams: it drives
  every input stream from a seeded source with random idle cycles, drains every output
  stream into a seeded sink with random back-pressure, watches the AXI stability rule on
  all of them, and returns the beats with the cycle each moved on.
* :func:`lint` runs ``verilator --lint-only -Wall`` with the block's listed waivers.
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
from myhdl import Cosimulation, SignalType, StopSimulation, block, delay, instance

from blocks.spec import BlockDef
from blocks.stream import Axis, axis_monitor, axis_sink, axis_source
from cnn_ip.export import write_verilog

PERIOD = 10
RESET_CYCLES = 3


class ToolMissing(RuntimeError):
    """A required external tool is not installed."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(base) / "cnn_ip"
    path.mkdir(parents=True, exist_ok=True)
    return path


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolMissing(f"{tool} not found on PATH; run `make setup` "
                          f"(installs the Debian packages iverilog, verilator, yosys)")
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
    require("iverilog")
    out = workdir / "sim.vvp"
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
    compile_icarus(workdir, [f"{name}.v", f"tb_{name}.v"], f"tb_{name}")
    command = f"cd {shlex.quote(str(workdir))} && exec vvp -n -m {shlex.quote(str(myhdl_vpi()))} sim.vvp"
    # A list, not a string: MyHDL splits string commands on spaces.
    return Cosimulation(["sh", "-c", command], **port_signals(ports))


@block
def clock_reset_driver(aclk, aresetn):
    """Free-running clock of ``PERIOD`` and ``RESET_CYCLES`` cycles of reset."""

    @instance
    def clock():
        while True:
            yield delay(PERIOD // 2)
            aclk.next = not aclk

    @instance
    def reset():
        aresetn.next = 0
        for _ in range(RESET_CYCLES):
            yield aclk.posedge
        aresetn.next = 1

    return clock, reset


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
    return {**sent, **received, "cycles": state["cycles"]}


WIDTH_MESSAGE = re.compile(r"%Warning-WIDTH: .*expects (\d+) bits.*generates (\d+) bits")


def lint(verilog, top: str, waivers: dict | None = None) -> list[str]:
    """Run ``verilator --lint-only -Wall``; raise ``AssertionError`` with what it found.

    ``waivers`` maps Verilator rules to the reason they are waived (``BlockDef.lint_waivers``);
    they are passed as ``-Wno-RULE``.  One waiver holds for every block: a WIDTH warning
    where the operand is *narrower* than its context.  MyHDL's converter leaves sign and
    zero extension to Verilog's rules instead of writing it out; co-simulation checks those
    paths bit for bit.  A WIDTH warning for a *truncation* still fails.
    Returns the waived messages.
    """
    require("verilator")
    verilog = Path(verilog)
    flags = [f"-Wno-{rule}" for rule in (waivers or {})]
    result = subprocess.run(["verilator", "--lint-only", "-Wall", "-Wno-fatal", *flags,
                             "--top-module", top, verilog.name],
                            cwd=verilog.parent, capture_output=True, text=True)
    waived, faults = [], []
    for line in (result.stdout + result.stderr).splitlines():
        if not line.startswith("%"):
            continue
        width = WIDTH_MESSAGE.match(line)
        if width and int(width.group(1)) > int(width.group(2)):
            waived.append(line)
        else:
            faults.append(line)
    if result.returncode != 0 or faults:
        raise AssertionError(f"verilator lint of {verilog}:\n" + "\n".join(faults))
    return waived
