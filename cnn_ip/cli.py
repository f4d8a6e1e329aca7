"""The ``cnn-ip`` command.

Each sub-command lives in its own module with ``register(subparsers)``, which adds its
parser and sets ``run=function(args) -> exit status``.  Modules are listed in
``COMMAND_MODULES``.  A user error (bad flag, bad file, bad plan) is reported as a single
line on stderr with exit status 2 and no traceback: commands raise :class:`UserError`.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from cnn_ip.errors import UserError

COMMAND_MODULES = (
    "cnn_ip.block_cmd",
    "cnn_ip.demo_cmd",
    "cnn_ip.synth_cmd",
    "cnn_ip.quantize_cmd",
    "cnn_ip.assemble_cmd",
    "cnn_ip.simulate_cmd",
)


class Parser(argparse.ArgumentParser):
    """``argparse`` that reports errors as one line (no usage dump), exit status 2."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message}")


def build_parser() -> Parser:
    parser = Parser(prog="cnn-ip", description="CNN-accelerator IP blocks and the flow that "
                    "turns a CNN into verified per-layer Verilog.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       parser_class=Parser)
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        status = args.run(args)
    except UserError as error:
        print(f"cnn-ip: {error}" if not str(error).startswith("cnn-ip") else str(error),
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnn-ip: interrupted", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
