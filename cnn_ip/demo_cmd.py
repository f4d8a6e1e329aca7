"""``cnn-ip demo -o DIR``: the main job as it stands, on the bundled example configurations.

Writes every block's and stage's Verilog, ``.vlt`` and sidecar for its example configuration
into ``DIR/<block>/`` and prints where each went and what the estimate says it costs.
"""
from __future__ import annotations

from pathlib import Path

from cnn_ip.block_cmd import all_blocks
from cnn_ip.errors import cannot_write, check_output_dir
from cnn_ip.export import generate

COLUMNS = ("lut", "ff", "dsp", "bram_bits", "latency", "cycles", "per")


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="generate every block for its example configuration")
    parser.add_argument("-o", "--output", default="out/demo", metavar="DIR")
    parser.set_defaults(run=run)


def show(value) -> str:
    """A parameter value for the table: scalars as they are, files and objects by kind."""
    if isinstance(value, (bool, int)) or (isinstance(value, str) and "/" not in value):
        return str(value)
    return f"<{type(value).__name__}>" if not isinstance(value, str) else "<file>"


def run(args) -> int:
    out = Path(args.output)
    blocks = all_blocks()
    for path in (args.output, *(out / name for name in blocks)):  # before the conversions
        check_output_dir(f"demo: -o {args.output}", path)
    rows = []
    for name, block_def in blocks.items():
        values = block_def.example()
        try:
            info = generate(block_def, out / name, **values)
        except OSError as error:
            raise cannot_write(f"demo: -o {args.output}", error) from None
        lines = len((out / name / f"{name}.v").read_text().splitlines())
        rows.append((name, str(out / name), lines, *(info["estimate"][k] for k in COLUMNS),
                     " ".join(f"{k}={show(v)}" for k, v in values.items())))
    header = ("block", "directory", "v lines", *COLUMNS, "example parameters")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0
