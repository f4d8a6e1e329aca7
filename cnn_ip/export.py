"""Turn a block into Verilog and its JSON sidecar (DESIGN.md, Contract 4 item 5).

``generate(block_def, out_dir, **values)`` writes ``NAME.v``, any ROM files the Verilog
reads, and ``NAME.json``.  Everything is produced in a scratch directory first and moved
into ``out_dir`` only when all of it succeeded, so a failure leaves nothing half-written.

The sidecar's port table is read back from the generated Verilog with pyverilog, so it
cannot drift from the module.
"""
from __future__ import annotations

import functools
import json
import os
import re
import tempfile
from pathlib import Path

from blocks.spec import BlockDef

SIDECAR_FORMAT = "cnn_ip.block/1"


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
    # Drop the date stamp and the scratch path so that equal parameters give equal files.
    text = re.sub(r"^// Date: .*\n", "", path.read_text(), flags=re.M)
    text = re.sub(r"^// File: .*$", f"// File: {path.name}", text, count=1, flags=re.M)
    path.write_text(text)
    return path


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
        "lint_waivers": dict(block_def.lint_waivers),
    }


def generate(block_def: BlockDef, out_dir, **values) -> dict:
    """Validate ``values``, write ``NAME.v``, its files and ``NAME.json`` into ``out_dir``.

    Raises ``ParameterError`` (naming the parameter) before anything is written.
    Returns the sidecar dictionary.
    """
    params, args = block_def.prepared(**values)
    out_dir = Path(out_dir)
    parent = out_dir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent, prefix=".cnn_ip-") as scratch:
        scratch = Path(scratch)
        verilog = write_verilog(block_def, scratch, args)
        files = list(block_def.write_files(args, str(scratch)))
        info = sidecar(block_def, params, args, verilog, files)
        (scratch / f"{block_def.name}.json").write_text(json.dumps(info, indent=2) + "\n")
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in [verilog.name, *files, f"{block_def.name}.json"]:
            os.replace(scratch / name, out_dir / name)
    return info

