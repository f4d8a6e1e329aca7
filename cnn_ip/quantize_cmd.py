"""``cnn-ip quantize PLAN -o DIR``: train, quantize and compress the plan's network.

Writes into ``DIR``: ``quant_report.json`` (accuracies, exact model bits, compression,
per-layer precision/sparsity/bits, the search history), ``model.npz`` (the integer model
for ``quant.reference``), the ROM images ``*.hex`` with their ``*.json`` sidecars, and
``search.png``; for a detector (``dataset: digits-detect``) mAP instead of accuracy, and
``detections.json``, ``ground_truth.json``, ``detections.png`` (``quant.detect_pipeline``).  Settings come from the plan's ``quantize:`` section; flags override them.
Everything is built in a scratch directory next to ``DIR`` and moved in at the end, so a
failure leaves ``DIR`` as it was; an existing ``DIR`` is replaced only if it holds a
previous ``quant_report.json`` (model size sums every sidecar in ``DIR``, so stale files
must not stay).
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from cnn_ip.errors import UserError, cannot_write, check_output_dir
from cnn_ip.export import replacing
from cnn_ip.plan import PlanError, load_plan

FLAGS = ("seed", "epochs", "qat_epochs", "search_epochs", "final_epochs", "evaluations",
         "confirm", "accuracy_budget", "threads")


def register(subparsers) -> None:
    parser = subparsers.add_parser("quantize", help="quantize a plan's network and write its ROM images")
    parser.add_argument("plan", metavar="PLAN", help="plan file (YAML)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR")
    for flag in FLAGS:
        kind = float if flag == "accuracy_budget" else int
        parser.add_argument("--" + flag.replace("_", "-"), dest=flag, type=kind, default=None,
                            metavar="X" if kind is float else "N",
                            help="torch threads (default 1; the order of float reductions "
                                 "may depend on it)" if flag == "threads" else
                            f"overrides the plan's quantize.{flag} (see docs/quant.md)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def settings_for(plan, args):
    """The plan's ``quantize:`` settings with the flags given over them, checked: a bad flag
    is named as the flag; a bad combination as the setting, at the plan's ``quantize:``
    line when the plan alone gives it (UserError)."""
    from quant.options import out_of_range
    from quant.pipeline import Settings, check_settings
    values = dict(plan.quantize)
    for flag in FLAGS:
        value = getattr(args, flag)
        if value is not None:
            if problem := out_of_range(flag, value):
                raise UserError(f"quantize: --{flag.replace('_', '-')}: {problem}")
            values[flag] = value
    known = {f.name for f in fields(Settings)}
    settings = Settings(progress=not args.quiet, **{k: v for k, v in values.items() if k in known})
    try:
        check_settings(settings)
    except ValueError as error:
        # a setting from the plan (or a rule among the plan's alone) is placed in the plan
        key = str(error).split(":", 1)[0]
        given = {flag for flag in FLAGS if getattr(args, flag) is not None}
        if key not in given and (key in plan.quantize or not given):
            raise in_plan(plan, error) from None
        raise UserError(f"quantize: {error}") from None
    return settings


def in_plan(plan, error: ValueError) -> PlanError:
    """A setting's error (``setting: what``) placed at the plan's ``quantize:`` line (the
    plan keeps no line for a key inside it)."""
    return PlanError(f"{plan.path}:{plan.line('quantize')}: quantize.{error}")


def run(args) -> int:
    plan = load_plan(args.plan)
    plan.require("dataset", "cnn-ip quantize")
    out = Path(args.output)
    check_output_dir(f"quantize: -o {args.output}", args.output,
                     previous="quant_report.json")
    settings = settings_for(plan, args)
    from quant.data import load_dataset
    from quant.pipeline import quantize
    from quant.search import SizeBudgetError
    try:
        with replacing(out) as scratch:
            detect = getattr(plan, "detect", None)
            data = load_dataset(plan.dataset, size=plan.input_shape[1:])
            try:
                report = quantize(plan.layers, data, scratch, settings, name=plan.name,
                                  detect=detect)
            except SizeBudgetError as error:          # the plan's (no flag sets it)
                raise in_plan(plan, error) from None
    except OSError as error:            # a directory the user named, unwritable
        raise cannot_write("quantize", error) from None
    roms = len(list(out.glob("*.hex")))
    if report.get("task") == "detection":
        print(f"wrote {out}/quant_report.json, model.npz, search.png, detections.json, "
              f"ground_truth.json, detections.png and {roms} ROM images")
        print(f"mAP@0.5 (test, {report['split']['test']} canvases): fp32 {report['fp32_map50']:.4f}, "
              f"integer {report['int_map50']:.4f}; mAP@0.5:0.95: fp32 {report['fp32_map']:.4f}, "
              f"integer {report['int_map']:.4f}; integer outputs equal fake-quant: "
              f"{report['agreement_exact_outputs']}")
    else:
        print(f"wrote {out}/quant_report.json, model.npz, search.png and {roms} ROM images")
        print(f"fp32 accuracy {report['fp32_accuracy']:.4f}, integer accuracy "
              f"{report['int_accuracy']:.4f}, agreement {report['agreement']:.4f}")
    print(f"model {report['model_bits']} bits, fp32 {report['fp32_bits']} bits, "
          f"compression {report['compression']:.2f}x")
    print(layer_table(report["layers"]))
    return 0


def layer_table(rows) -> str:
    """The per-layer table: precision, sparsity and exact bits."""
    lines = [f"{'layer':<8} {'type':<6} {'weights':<8} {'act':<6} {'act_bits':>8} "
             f"{'sparsity':>8} {'shape':>12} {'bits':>8}"]
    for r in rows:
        shape = "x".join(str(v) for v in r["shape"])
        lines.append(f"{r['name']:<8} {r['type']:<6} {r['weights']:<8} {r['act']:<6} "
                     f"{str(r['act_bits'] or '-'):>8} {r['sparsity']:>8.4f} {shape:>12} {r['bits']:>8}")
    return "\n".join(lines)
