"""``cnn-ip block NAME [--param value ...] -o DIR``: one block's Verilog, ``.vlt`` and sidecar.

Flags are generated from the block's parameter table (``blocks.spec.Param``): ``--lanes 4``,
``--weights ternary``, ``--asigned``/``--no-asigned``, ``--weights-file W.npy``.
"""
from __future__ import annotations

import argparse

from blocks.spec import Param, ParameterError, registry
from cnn_ip.errors import UserError, cannot_write, check_output_dir
from cnn_ip.export import generate

# Where the tools look for BlockDefs: the blocks, and the stages built from them.
PACKAGES = ("blocks", "assemblies")


def all_blocks() -> dict:
    """Every block and stage the ``cnn-ip`` commands know, by name."""
    return registry(PACKAGES)


def add_param_flag(parser, param: Param) -> None:
    kwargs = {"dest": param.name, "help": param.help + f" ({param.allowed()})"}
    if param.kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif param.kind is int:
        kwargs["type"] = int
        kwargs["metavar"] = "N"
    elif param.choices is not None:
        kwargs["choices"] = param.choices
    else:
        kwargs["metavar"] = "FILE" if param.kind == "path" else "VALUE"
    parser.add_argument(param.flag, default=None, **kwargs)


def register(subparsers) -> None:
    parser = subparsers.add_parser("block", help="write one block's Verilog and JSON sidecar")
    blocks = parser.add_subparsers(dest="block", metavar="NAME", parser_class=type(parser))
    blocks.required = True
    for name, block_def in all_blocks().items():
        sub = blocks.add_parser(name, help=(block_def.build.func.__doc__ or "").split("\n")[0])
        for param in block_def.params:
            add_param_flag(sub, param)
        sub.add_argument("-o", "--output", required=True, metavar="DIR",
                         help="directory for NAME.v, NAME.vlt, NAME.json and ROM files")
        sub.set_defaults(run=run, block_def=block_def)


def describe_estimate(est: dict) -> str:
    """One line: ``lut 16, ff 20, ..., bram xilinx 0 RAMB36 + 1 RAMB18 / ecp5 2 DP16KD, ...``."""
    def show(value):
        if isinstance(value, dict):
            return " / ".join(f"{family} " + " + ".join(f"{n} {cell}" for cell, n in cells.items())
                              for family, cells in value.items())
        return str(value)
    return ", ".join(f"{k} {show(v)}" for k, v in est.items())


def run(args) -> int:
    block_def = args.block_def
    values = {p.name: getattr(args, p.name) for p in block_def.params
              if getattr(args, p.name) is not None}
    check_output_dir(f"block {block_def.name}: -o {args.output}", args.output)
    try:
        info = generate(block_def, args.output, **values)
    except ParameterError as error:
        flags = {p.name: p.flag for p in block_def.params}
        name, _, rest = str(error).partition(": ")
        raise UserError(f"block {block_def.name}: {flags.get(name, name)}: {rest}") from None
    except OSError as error:
        raise cannot_write(f"block {block_def.name}: -o {args.output}", error) from None
    est = info["estimate"]
    print(f"wrote {args.output}/{block_def.name}.v, {block_def.name}.vlt, {block_def.name}.json"
          + "".join(f", {f}" for f in info["files"]))
    print("estimate: " + describe_estimate(est))
    return 0
