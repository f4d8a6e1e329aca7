"""Bayesian per-layer sparsity search against the uniform baseline, over several seeds.

    .venv/bin/python bench/quantize.py [--plan examples/digits.yaml] [--seeds 0 1 2] [--out /tmp/bench_quantize]

Runs the `cnn-ip quantize` flow (``quant.pipeline.quantize``) once per seed (same evaluation budget for both searches) and prints
one row per seed: the best objective, bits and validation accuracy of each search, and
the exported model's test accuracy and compression.  Prints a table; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cnn_ip.plan import load_plan
from quant.data import load_dataset
from quant.pipeline import Settings, quantize


def run(plan: str, seeds, out: Path) -> list[dict]:
    rows = []
    parsed = load_plan(plan)
    data = load_dataset(parsed.dataset)
    for seed in seeds:
        target = out / f"seed{seed}"
        started = time.process_time()
        settings = Settings(**{**parsed.quantize, "seed": seed, "progress": False})
        quantize(parsed.layers, data, target, settings, name=parsed.name)
        report = json.loads((target / "quant_report.json").read_text())
        bayes, uniform = report["search"]["best_bayes"], report["search"]["best_uniform"]
        rows.append({"seed": seed, "bo_obj": bayes["objective"], "uni_obj": uniform["objective"],
                     "bo_searched_bits": bayes["searched_bits"], "uni_searched_bits": uniform["searched_bits"],
                     "bo_val": round(bayes["val_accuracy"], 4), "uni_val": round(uniform["val_accuracy"], 4),
                     "fp32_test": report["fp32_accuracy"], "int_test": report["int_accuracy"],
                     "compression": report["compression"],
                     "cpu_s": round(time.process_time() - started, 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", default="examples/digits.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="/tmp/bench_quantize")
    args = parser.parse_args()
    rows = run(args.plan, args.seeds, Path(args.out))
    header = list(rows[0])
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in header]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(str(r[h]).ljust(w) for h, w in zip(header, widths)))


if __name__ == "__main__":
    main()
