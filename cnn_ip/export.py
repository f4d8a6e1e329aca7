"""Turn a block into Verilog, its lint configuration and its JSON sidecar.

``generate(block_def, out_dir, **values)`` writes ``NAME.v``, ``NAME.vlt``, any ROM files
the Verilog reads, and ``NAME.json``.  Everything is produced in a scratch directory first
and moved into ``out_dir`` only when all of it succeeded, so a failure leaves nothing
half-written.

Lint-clean as delivered: ``NAME.vlt`` is a Verilator configuration that waives single
lines, each with its reason, so that ``verilator --lint-only -Wall NAME.vlt NAME.v`` (with
any other ``.v`` files of the directory, such as ``*_sim.v`` models) exits 0 exactly as a
user runs it.  :func:`write_lint_config` writes it for any directory of Verilog (a block, a
stage with sub-modules, a network) from Verilator's own warnings: it waives only a WIDTH
warning where an operand is *narrower* than its context (MyHDL's converter leaves sign
and zero extension to Verilog's rules instead of writing it out; co-simulation checks
those paths bit for bit) and fails on anything else, a truncation included.

The sidecar's port table is read back from the generated Verilog with pyverilog, so it
cannot drift from the module.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from assemblies import network
from blocks.spec import VERILOG_NAME, BlockDef

SIDECAR_FORMAT = "cnn_ip.block/1"


class ToolMissing(RuntimeError):
    """A required external tool is not installed."""


class LintError(RuntimeError):
    """Verilator reports something that no line waiver may hide."""


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolMissing(f"{tool} not found on PATH; run `make setup` "
                          f"(installs the Debian packages iverilog, verilator, yosys)")
    return path


def write_verilog(block_def: BlockDef, out_dir, args: dict, *, testbench: bool = False) -> Path:
    """Convert ``block_def`` with prepared ``args`` into ``out_dir/NAME.v``.

    With ``testbench`` MyHDL also writes ``tb_NAME.v``, the co-simulation wrapper.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ports = block_def.ports(**args)
    instance = block_def.build(**ports, **args)
    instance.convert(hdl="Verilog", path=str(out_dir), name=block_def.name,
                     testbench=testbench)
    path = out_dir / f"{block_def.name}.v"
    path.write_text(short_lines(without_stamps(path)))
    return path


# Verilator's preprocessor refuses a line of more than 40,000 tokens ("perhaps recursive
# `define"); a concatenation of a wide decoder's fields (lanes 32, simd 64) reached 230,000
# characters, about 40,000 tokens.  Lines above this many characters are broken.
LONG_LINE = 20_000
WRAP_AT = 1_000


def short_lines(text: str) -> str:
    """``text`` with every line longer than ``LONG_LINE`` broken after its ``", "`` into
    lines of about ``WRAP_AT`` characters: Verilog does not care where a line ends, except
    in a comment, a string or a compiler directive (a newline ends a macro), so a line
    holding one is left alone, as is every shorter line."""
    out = []
    for line in text.split("\n"):
        if len(line) <= LONG_LINE or "//" in line or '"' in line or line.lstrip()[:1] == "`":
            out.append(line)
            continue
        pieces, size = [[]], 0
        for part in line.split(", "):
            if size > WRAP_AT:
                pieces.append([])
                size = 0
            pieces[-1].append(part)
            size += len(part) + 2
        out.append(",\n    ".join(", ".join(piece) for piece in pieces))
    return "\n".join(out)


def without_stamps(verilog: Path) -> str:
    """MyHDL's output without its date stamp and scratch path, so that equal parameters
    give equal files."""
    text = re.sub(r"^// Date: .*\n", "", verilog.read_text(), flags=re.M)
    return re.sub(r"^// File: .*$", f"// File: {verilog.name}", text, count=1, flags=re.M)


@functools.lru_cache(maxsize=1)
def verilog_parser():
    """One pyverilog parser a process: building it takes seconds (PLY grammar checks)."""
    from pyverilog.vparser.parser import VerilogParser

    # The parser alone: pyverilog's preprocessing step writes files into the working
    # directory, and converted blocks carry no macros or includes to expand.
    tables = Path(tempfile.gettempdir()) / "cnn_ip-pyverilog"
    return VerilogParser(outputdir=str(tables), debug=False)


def module_interface(text: str, top: str) -> str:
    """Module ``top``'s header and port declarations, without its body.

    Parsing the body of a large converted block takes seconds and adds nothing to the
    port table.
    """
    start = re.search(rf"^module {re.escape(top)}\b", text, flags=re.M)
    if start is None:
        raise ValueError(f"no module {top} in the generated Verilog")
    body = text[start.start():]
    header_end = body.index(");") + 2
    declarations = re.findall(r"^\s*(?:input|output|inout)\b[^;]*;", body[header_end:], flags=re.M)
    return body[:header_end] + "\n" + "\n".join(declarations) + "\nendmodule\n"


def read_ports(verilog: Path, top: str) -> list[dict]:
    """Ports of module ``top`` as ``{name, direction, width}``, parsed with pyverilog."""
    from pyverilog.vparser import ast

    tree = verilog_parser().parse(module_interface(verilog.read_text(), top), debug=0)
    module = next(d for d in tree.description.definitions
                  if isinstance(d, ast.ModuleDef) and d.name == top)
    directions = {}
    for item in module.items:
        if isinstance(item, ast.Decl):
            for decl in item.list:
                if isinstance(decl, (ast.Input, ast.Output, ast.Inout)):
                    width = 1
                    if decl.width is not None:
                        width = abs(int(decl.width.msb.value) - int(decl.width.lsb.value)) + 1
                    directions[decl.name] = (type(decl).__name__.lower(), width)
    ports = []
    for port in module.portlist.ports:
        name = port.first.name if hasattr(port, "first") else port.name
        direction, width = directions[name]
        ports.append({"name": name, "direction": direction, "width": width})
    return ports


def sidecar(block_def: BlockDef, params: dict, args: dict, verilog: Path,
            files: list[str]) -> dict:
    """The JSON sidecar: parameters, ports read from ``verilog``, derived widths, cost."""
    shown = {k: (v if isinstance(v, (int, bool, str, float)) or v is None else str(v))
             for k, v in params.items()}
    return {
        "format": SIDECAR_FORMAT,
        "block": block_def.name,
        "top": block_def.name,
        "verilog": verilog.name,
        "files": files,
        "parameters": shown,
        "derived": block_def.derived(**args),
        "ports": read_ports(verilog, block_def.name),
        "estimate": block_def.estimate(**args),
        "lint_config": f"{block_def.name}.vlt",
    }


# --- lint-clean as delivered ----------------------------------------------------------------

MESSAGE = re.compile(r"^%(?P<kind>Warning|Error)(?:-(?P<rule>[A-Z0-9_]+))?: "
                     r"(?P<file>[^:\s]+):(?P<line>\d+):(?:\d+:)? (?P<text>.*)$")
# "expects 32 bits" or, for an operand of an operator whose other operand and result
# differ in width, "expects 32 or 25 bits": every width named is a context to fit
WIDTH_SIZES = re.compile(r"expects (\d+(?: or \d+)*) bits.*generates (\d+) bits")
WIDTH_OPERAND = re.compile(r"but (.*?) generates")
WIDTH_INDEX = re.compile(r"(\w+ extraction of .*?) requires (\d+) bit index, not (\d+) bits")
WIDTH_REASON = ("WIDTH where an operand (or a select's index) is narrower than its context: "
                "MyHDL's converter leaves sign/zero extension to Verilog's rules instead of "
                "writing it out; co-simulation checks these paths bit for bit. "
                "A truncation is never waived.")


def verilog_sources(directory, top: str) -> list[str]:
    """What a user lints with ``TOP.vlt``: ``TOP.v``, then every other ``.v`` file of the
    directory (sub-modules, ``*_sim.v`` models), test-bench wrappers ``tb_*.v`` aside."""
    directory = Path(directory)
    others = sorted(p.name for p in directory.glob("*.v")
                    if p.name != f"{top}.v" and not p.name.startswith("tb_"))
    return [f"{top}.v", *others]


def lint_command(directory, top: str) -> list[str]:
    """The user's lint command for ``directory``: run it there."""
    vlt = [f"{top}.vlt"] if (Path(directory) / f"{top}.vlt").exists() else []
    return ["verilator", "--lint-only", "-Wall", *vlt, *verilog_sources(directory, top)]


def verilator_messages(directory, command: list[str]) -> tuple[int, list[dict], str]:
    """Run ``command`` in ``directory``; its exit status, parsed messages and raw output."""
    require("verilator")
    result = subprocess.run(command, cwd=directory, capture_output=True, text=True)
    output = result.stdout + result.stderr
    found = [m.groupdict() for m in map(MESSAGE.match, output.splitlines()) if m]
    return result.returncode, found, output


def waiver_reason(message: dict, rules: dict) -> str | None:
    """Why ``message`` may be waived on its line, or ``None`` if it may not."""
    if message["kind"] != "Warning":
        return None
    if message["rule"] in ("WIDTH", "WIDTHEXPAND"):
        sizes = WIDTH_SIZES.search(message["text"])
        if sizes and all(int(n) > int(sizes.group(2)) for n in sizes.group(1).split(" or ")):
            operand = WIDTH_OPERAND.search(message["text"])
            what = operand.group(1) if operand else "an operand"
            return (f"{what} ({sizes.group(2)} bits) is extended to {sizes.group(1)} bits "
                    f"by Verilog's rules (MyHDL conversion)")
        index = WIDTH_INDEX.search(message["text"])
        if index and int(index.group(3)) < int(index.group(2)):
            return (f"{index.group(1)}: its {index.group(3)}-bit index is extended to "
                    f"{index.group(2)} bits by Verilog's rules (MyHDL conversion)")
        return None
    return rules.get(message["rule"])


def write_lint_config(directory, top: str, *, rules: dict | None = None) -> list[dict]:
    """Write ``directory/TOP.vlt`` so that the user's lint command exits 0; return its waivers.

    Runs Verilator over the directory's Verilog (:func:`verilog_sources`) and waives each
    warning MyHDL's conversion forces on its own line, with the reason in a comment:
    WIDTH where an operand is narrower than its context, and the rules a block lists in
    ``rules`` (``{rule: reason}``, ``BlockDef.lint_waivers``).  Raises :class:`LintError`
    naming every other message (a truncation is a fault, never waived), and if the
    user's command (:func:`lint_command`) does not then exit 0.
    """
    directory = Path(directory)
    vlt = directory / f"{top}.vlt"
    vlt.unlink(missing_ok=True)
    command = ["verilator", "--lint-only", "-Wall", "-Wno-fatal", *verilog_sources(directory, top)]
    status, messages, output = verilator_messages(directory, command)
    waivers, faults = {}, []
    for message in messages:
        reason = waiver_reason(message, rules or {})
        if reason is None:
            faults.append(f"{message['file']}:{message['line']}: {message['text']}")
            continue
        key = (message["file"], int(message["line"]), message["rule"])
        waivers.setdefault(key, [])
        if reason not in waivers[key]:
            waivers[key].append(reason)
    if faults or status != 0:
        raise LintError(f"verilator lint of {top} in {directory}: not waivable:\n"
                        + "\n".join(faults or [output.strip()]))
    user = ["verilator", "--lint-only", "-Wall", vlt.name, *verilog_sources(directory, top)]
    # A comment must not start with the word "verilator": that makes it a directive.
    lines = ["`verilator_config",
             f"// Lint waivers for {top}, written with the Verilog by cnn_ip.export; each",
             "// waives one line of one file, for the reason above it. Lint with:",
             f"// $ {' '.join(user)}",
             f"// Waived: {WIDTH_REASON}"]
    for (file, line, rule), reasons in sorted(waivers.items()):
        lines += [f"// {file}:{line}: {reason}" for reason in reasons]
        lines.append(f'lint_off -rule {rule} -file "*{file}" -lines {line}')
    vlt.write_text("\n".join(lines) + "\n")
    status, messages, output = verilator_messages(directory, lint_command(directory, top))
    if status != 0 or messages:
        raise LintError(f"verilator lint of {top} with {vlt.name} still fails:\n{output.strip()}")
    return [{"file": file, "line": line, "rule": rule, "reason": "; ".join(reasons)}
            for (file, line, rule), reasons in sorted(waivers.items())]


@contextlib.contextmanager
def making_parents(out):
    """Make ``out``'s missing parent directories; if the body raises, remove the first
    directory made here (``out`` itself too, if the body made it): a command that fails
    leaves nothing behind (docs/conventions.md)."""
    out = Path(out).resolve()
    made = next((path for path in [*reversed(out.parents), out] if not path.exists()), None)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        yield
    except BaseException:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise


@contextlib.contextmanager
def replacing(out):
    """Yield a scratch directory beside ``out`` (its parents made by :func:`making_parents`)
    that replaces ``out`` when the body succeeds, and is removed when it fails: a command's
    output directory appears whole or not at all.  The scratch directory gets the
    permissions the umask gives a new directory, not ``mkdtemp``'s 0700."""
    out = Path(out)
    with making_parents(out):
        scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(scratch, 0o777 & ~umask)
        try:
            yield scratch
            if out.exists():
                shutil.rmtree(out)
            scratch.rename(out)
        finally:
            if scratch.exists():
                shutil.rmtree(scratch)


def generate(block_def: BlockDef, out_dir, **values) -> dict:
    """Validate ``values``, write ``NAME.v``, ``NAME.vlt``, its files and ``NAME.json``.

    Raises ``ParameterError`` (naming the parameter) before anything is written.
    Returns the sidecar dictionary.
    """
    params, args = block_def.prepared(**values)
    out_dir = Path(out_dir)
    with making_parents(out_dir):
        return _generate(block_def, out_dir, out_dir.resolve().parent, params, args)


def _generate(block_def: BlockDef, out_dir: Path, parent: Path, params, args) -> dict:
    with tempfile.TemporaryDirectory(dir=parent, prefix=".cnn_ip-") as scratch:
        scratch = Path(scratch)
        verilog = write_verilog(block_def, scratch, args)
        files = list(block_def.write_files(args, str(scratch)))
        info = sidecar(block_def, params, args, verilog, files)
        info["lint_waivers"] = write_lint_config(scratch, block_def.name,
                                                 rules=block_def.lint_waivers)
        (scratch / f"{block_def.name}.json").write_text(json.dumps(info, indent=2) + "\n")
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in [verilog.name, f"{block_def.name}.vlt", *files, f"{block_def.name}.json"]:
            os.replace(scratch / name, out_dir / name)
    return info


# --------------------------------------------------------------------------- network top

def write_network_top(elements, out_dir, *, name: str) -> list[str]:
    """Convert the chain into ``out_dir/<name>.v`` (one ``convert()``) and write every file
    its blocks read (ROM images, ``*_sim.v`` models) and ``<name>.vlt``; return the names.

    Built in a scratch directory and moved in only when all of it succeeded.
    """
    if not VERILOG_NAME.fullmatch(name):
        raise ValueError(f"name: must be a Verilog identifier, got {name!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.resolve().parent, prefix=".network-") as tmp:
        scratch = Path(tmp)
        top_function, ports = network.top_block(elements, name)
        top_function(**ports).convert(hdl="Verilog", path=str(scratch), name=name,
                                      testbench=False)
        verilog = scratch / f"{name}.v"
        verilog.write_text(without_stamps(verilog))
        files = {f"{name}.v"}
        for element in elements:
            for written in element.block_def.write_files(element.args, str(scratch)):
                if written in files and not written.endswith("_sim.v"):
                    raise ValueError(f"two blocks write {written}: ROM file names must differ")
                files.add(written)
        write_lint_config(scratch, name, rules=network.lint_rules(elements))
        files.add(f"{name}.vlt")
        for item in sorted(files):
            os.replace(scratch / item, out_dir / item)
    return sorted(files)


def write_network(stages, out_dir, *, name: str, target: str = "generic") -> dict:
    """Convert the network top into ``out_dir`` and return its sidecar (not written here).

    ``out_dir`` is ``DIR/rtl`` of ``cnn-ip assemble``; the sidecar, meant for
    ``DIR/<name>.json``, names the Verilog relative to ``DIR`` (``rtl/<name>.v``) so that
    ``cnn-ip synth DIR`` finds it.
    """
    elements = network.chain(stages, target)
    files = write_network_top(elements, out_dir, name=name)
    out_dir = Path(out_dir)
    return {"format": network.FORMAT, "top": name, "verilog": f"{out_dir.name}/{name}.v",
            "files": files, "ports": read_ports(out_dir / f"{name}.v", name),
            **network.stream_shape(stages, elements),
            "stages": [{"layer": p.layer.name, "type": p.layer.type, "lanes": p.lanes,
                        "simd": p.simd, "fifo_depth": p.fifo_depth, "dataflow": p.dataflow,
                        **({"buffers": p.buffers} if p.frame else {})}
                       for p in stages]}
