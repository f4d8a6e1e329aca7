"""The whole quantization flow behind ``cnn-ip quantize`` (and usable from Python):

1. train the fp32 model (batch norm included) on the train split;
2. fold batch norm, calibrate each layer's activation scale on the train split, build the
   quantization-aware model (every layer in its own weight mode and activation bits);
3. fine-tune it with the plan's fixed sparsities (``auto`` layers at ``base_sparsity``): the base;
4. Bayesian search over the ``auto`` layers' sparsities and pruning structures, and the
   uniform baseline (``quant.search``), each evaluation a short fine-tune from the base,
   its bits counted in the weight codings ``codes`` names;
5. fine-tune the chosen point longer, export the integer model (``model.npz``), its ROM
   images, ``quant_report.json`` and ``search.png``.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from quant import export, reference, sparse_format, train
from quant.model import fp32_parameter_count
from quant.plot import plot_search
from quant.options import CODE_SET_NAMES, RANGES, out_of_range
from quant.search import (Evaluator, Objective, best_of, check_evaluations, check_objective,
                          check_size_budget_mode, check_structures, model_bits, run_searches)

# The weight codings the search counts bits in: what the decoder block reads, or every
# coding of docs/sparse_format.md (``cnn_ip.sparse/2`` included) for a model meant for a
# decoder that reads /2.  The ROM images are written in the hardware's codings either way.
CODE_SETS = dict(zip(CODE_SET_NAMES, (sparse_format.HARDWARE_CODES, sparse_format.CODES)))
# A classifier pruned away from its base (the search's evaluations and the final
# fine-tuning) is fine-tuned at 3x the base's learning rate, and the final fine-tuning
# distils from the fp32 model too (DISTILL x T^2 x KL(fp32 || quantized) at temperature
# DISTILL_T, beside the cross-entropy).  Measured on digits_sparse, conv5 0.8 and conv3
# 0.5 in blocks of 16: after 2 epochs (an evaluation) 95.6 % validation top-1 at 3e-3
# against 82.5 % at 1e-3 (every layer at 0.5, seed 0), and distilling there lowers it
# (95.1 % against 96.3 %, mean of 6 near-equal points); after 20 epochs the validation
# smoothed accuracy is 0.9784 / 0.9746 / 0.9737 (seeds 0/1/2) at 3e-3 distilled, 0.9724
# / 0.9744 / 0.9707 at 3e-3 alone, 0.9693 / 0.9736 / 0.9689 at 1e-3 alone.
PRUNED_LR = 3e-3
DISTILL, DISTILL_T = 1.0, 2.0


@dataclass
class Settings:
    seed: int = 0
    epochs: int = 40             # fp32 training
    qat_epochs: int = 10         # base quantization-aware fine-tuning
    search_epochs: int = 3       # per search evaluation
    final_epochs: int = 20       # at the chosen sparsities
    evaluations: int = 12        # per search (Bayesian and uniform each)
    accuracy_budget: float = 0.5  # accuracy points the search may lose for free
    penalty: float = 1.0
    accuracy_weight: float = 0.0  # objective: per point of the measure lost (or gained), anywhere
    size_exponent: float = 1.0   # objective: the size term is (bits / base bits) ** this
    scalarization: str = "sum"   # objective: quant.options.SCALARIZATIONS
    utopia: float = 1.5          # objective, chebyshev: points of the measure above the base
    size_budget: int | None = None  # objective: bits the model may take (quant.search.SIZE_PENALTY)
    size_budget_mode: str = "penalty"  # quant.options.SIZE_BUDGET_MODES: penalised, or filled
    mbits: int = 8               # width bound of the requantization multipliers M
    base_sparsity: float = 0.5   # of the `auto` layers in the base model the search starts from
    codes: str = "hardware"      # a key of CODE_SETS: the codings the search counts bits in
    structures: str = "any"      # quant.options.STRUCTURE_OFFERS: unstructured offered or not
    prune_steps: int = 4         # gradual pruning: steps from the base's sparsity to a point's
    confirm: int = 0             # evaluations of each search re-running its best candidates
    threads: int = 1
    progress: bool = True


def log(message: str, progress: bool) -> None:
    if progress:
        print(message, file=sys.stderr)


def quantize(specs, data, out_dir, settings: Settings, *, name="model", fp32_net=None,
             detect=None) -> dict:
    """Run the flow on plan-like layer ``specs`` and a :class:`quant.data.Dataset`;
    write everything into ``out_dir`` (created) and return the report.  ``fp32_net``: an
    already trained :class:`quant.model.FloatNet` (skips step 1).  A detection data set
    (``digits-detect``) goes through :mod:`quant.detect_pipeline`; ``detect`` is the plan's
    ``detect`` mapping (``{"anchors": N}``)."""
    if data.name == "digits-detect":
        from quant.detect_pipeline import quantize_detector
        anchors = (detect or {}).get("anchors") or specs[-1].out // (5 + data.classes)
        return quantize_detector(specs, data, out_dir, settings, name=name, anchors=anchors,
                                 log=lambda message: log(message, settings.progress),
                                 fp32_net=fp32_net)
    check_settings(settings)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = settings
    started = time.monotonic()
    with train.deterministic(s.seed, s.threads):
        net = fp32_net or train.train_fp32(specs, data, epochs=s.epochs, seed=s.seed,
                                           progress=s.progress)
        fp32_test, fp32_val = train.fp32_accuracy(net, data.test), train.fp32_accuracy(net, data.val)
        log(f"fp32: test {fp32_test:.4f}, validation {fp32_val:.4f}", s.progress)
        qnet, evaluator, objective, search, chosen, ref_bits, _ = quantize_and_search(
            specs, net, data, s, measure="validation top-1")
        layers = qnet.int_layers()
        z_fake_test = train.fakequant_outputs(qnet, data.test.x)
    sidecars = export.save(out, layers)
    report = make_report(name, specs, data, s, layers, sidecars, out, net_acc=(fp32_test, fp32_val),
                         z_fake_test=z_fake_test, objective=objective, search=search,
                         chosen=chosen, ref_bits=ref_bits, base=evaluator.reference)
    # the accuracy budget is on the smoothed accuracy, not the top-1 plotted: not drawn
    plot_search(out / "search.png", report["search"], ref_accuracy=evaluator.reference["accuracy"],
                accuracy_budget=None, title=f"{name}: sparsity search",
                size_budget=s.size_budget)
    (out / "quant_report.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"done in {time.monotonic() - started:.1f} s", s.progress)
    return report


def check_settings(s: Settings) -> None:
    """ValueError (``setting: what is wrong``) unless every setting is one the flow takes:
    each number in its range (``quant.options.RANGES``), each word one of its choices, and
    the confirmation runs and the objective's shape consistent with the rest."""
    for key in RANGES:
        value = getattr(s, key)
        if value is not None and (problem := out_of_range(key, value)):
            raise ValueError(f"{key}: {problem}")
    if s.confirm:
        check_evaluations(s.evaluations, s.confirm)
    check_size_budget_mode(s.size_budget_mode, s.size_budget)
    if s.codes not in CODE_SETS:
        raise ValueError(f"codes: must be one of {', '.join(CODE_SETS)}, got {s.codes!r}")
    check_objective(s.size_exponent, s.scalarization, s.accuracy_weight, s.utopia)
    check_structures(s.structures)


def quantize_and_search(specs, net, data, s: Settings, *, measure: str, head_mbits=None,
                        loss=None, score=None, calibration: int | None = None,
                        tuning: dict | None = None):
    """Steps 2-5 on a trained fp32 ``net``: the fake-quant model, its base fine-tuning, the
    sparsity searches and the final fine-tuning at the chosen point (left in ``qnet``).
    ``loss``/``score``: the fine-tuning loss and validation measure (default the
    classifier's cross-entropy, and mean probability of the true class for the search
    with top-1 reported beside it); ``measure`` names the latter in the log;
    ``calibration``: how many training images calibrate the activation scales (all);
    ``tuning``: keyword arguments of every quantization-aware fine-tuning
    (:func:`quant.train.finetune`'s ``lr``, ``batch``; their defaults when not given).
    Returns ``(qnet, evaluator, objective, search, chosen, base bits, base measure)``."""
    qnet, evaluator, objective, auto = searchable_base(
        specs, net, data, s, measure=measure, head_mbits=head_mbits, loss=loss, score=score,
        calibration=calibration, tuning=tuning)
    if auto and s.evaluations > 0:
        search = run_searches(evaluator, evaluations=s.evaluations, seed=s.seed,
                              progress=s.progress, confirm=s.confirm)
        chosen = dict(search["best"]["sparsity"])
        structure = dict(search["best"]["structure"])
        fill = search["best"].get("fill")
    else:
        search, chosen, structure = {"bayes": [], "uniform": [], "best": None}, {}, {}
        fill = None
    final_finetune(evaluator, net, data, s, chosen, structure, loss=loss, score=score,
                   fill=fill)
    base = evaluator.reference
    return qnet, evaluator, objective, search, chosen, base["bits"], base["measure"]


def searchable_base(specs, net, data, s: Settings, *, measure: str, head_mbits=None, loss=None,
                    score=None, calibration: int | None = None, tuning: dict | None = None):
    """Steps 2-3: the fake-quant model fine-tuned at the base sparsities, and the
    :class:`quant.search.Evaluator` (its ``reference``: the base's measurements) and
    :class:`quant.search.Objective` the searches use.  Returns ``(qnet, evaluator,
    objective, auto layer names)``."""
    check_settings(s)
    qnet = train.quantize_net(specs, net, train.activation_scales(net, data.train.x[:calibration]),
                              mbits=s.mbits, head_mbits=head_mbits)
    fixed = {sp.name: sp.sparsity for sp in specs if sp.type != "maxpool" and sp.sparsity != "auto"}
    auto = [sp.name for sp in specs if sp.type != "maxpool" and sp.sparsity == "auto"]
    for layer in qnet.weight_layers():
        layer.set_sparsity(fixed.get(layer.spec.name, s.base_sparsity))
    tuning = dict(tuning or {})
    train.finetune(qnet, data, epochs=s.qat_epochs, seed=s.seed, desc="quantization-aware",
                   progress=s.progress, loss=loss, **tuning)
    search_tuning = tuning if score is not None else {**tuning, "lr": PRUNED_LR}
    evaluator = Evaluator(qnet, data, auto, epochs=s.search_epochs, seed=s.seed, loss=loss,
                          tuning=tuning, score=score, codes=CODE_SETS[s.codes],
                          steps=s.prune_steps, search_tuning=search_tuning,
                          structures=s.structures)
    base = evaluator.measure()
    evaluator.reference = {k: v for k, v in base.items() if k != "layers"}
    name = "val_accuracy" if score is not None else "val_smoothed_accuracy"
    objective = Objective(base["searched_bits"], base["measure"], s.accuracy_budget, s.penalty,
                          measure=name, weight=s.accuracy_weight,
                          size_exponent=s.size_exponent, scalarization=s.scalarization,
                          utopia=s.utopia, size_budget=s.size_budget,
                          fixed_bits=base["bits"] - base["searched_bits"],
                          fill=s.size_budget_mode == "fill")
    evaluator.objective = objective
    if objective.fill:
        evaluator.fill_to(s.size_budget, base)
    log(f"quantized base: {base['bits']} bits, {measure} {base['accuracy']:.4f}", s.progress)
    return qnet, evaluator, objective, auto


def final_finetune(evaluator, net, data, s: Settings, chosen: dict, structure: dict, *,
                   loss=None, score=None, fill: list | None = None) -> None:
    """Step 5: ``chosen`` (with ``structure``) pruned from the evaluator's base and
    fine-tuned ``final_epochs`` at the evaluations' learning rate, a classifier (no
    ``loss``/``score`` of its own) distilled from the fp32 ``net``; left in
    ``evaluator.qnet``.  ``fill``: the chosen point's weight bits (size_budget_mode fill),
    the last pruning step's sparsities solved to meet them (``Evaluator.apply``)."""
    final_loss = distillation_loss(net, data) if score is None and loss is None else loss
    evaluator.apply(chosen, s.final_epochs, desc="final fine-tuning", structure=structure,
                    tuning=evaluator.search_tuning, loss=final_loss, fill=fill)


def distillation_loss(net, data, weight: float = DISTILL, temperature: float = DISTILL_T):
    """Fine-tuning loss of a classifier (``quant.train.finetune``'s ``loss(outputs, idx)``,
    outputs the real logits): cross-entropy plus ``weight`` x ``temperature``^2 x the
    KL divergence from the fp32 ``net``'s softened output on the same training images."""
    with torch.no_grad():
        net.eval()
        teacher = F.log_softmax(net(train.as_float(data.train.x)).float() / temperature, dim=1)
    labels = torch.from_numpy(data.train.y)

    def loss(outputs, idx):
        outputs = outputs.float()
        student = F.log_softmax(outputs / temperature, dim=1)
        kl = F.kl_div(student, teacher[idx], log_target=True, reduction="batchmean")
        return F.cross_entropy(outputs, labels[idx]) + weight * temperature ** 2 * kl
    return loss


def layer_rows(specs, layers, sidecars, chosen, structure=None, sparse2=None, *,
               base_sparsity: float) -> list[dict]:
    """The report's per-layer table: precision, sparsity, pruning structure and exact bits
    of each weight layer; ``sparse2``: :func:`quant.search.model_bits`'s weight ROM choice
    with every coding allowed, reported beside the written one.  An ``auto`` layer the
    search did not choose for (no evaluations) stays at ``base_sparsity``."""
    rows = []
    for layer in layers:
        if layer.W is None:
            continue
        infos = sidecars[layer.name]
        weight_info = infos[0]
        spec = next(sp for sp in specs if sp.name == layer.name)
        rows.append({
            "name": layer.name, "type": layer.type, "weights": layer.weights, "act": layer.act,
            "act_bits": layer.act_bits, "sparsity": round(export.layer_sparsity(layer), 6),
            "target_sparsity": chosen.get(layer.name, base_sparsity if spec.sparsity == "auto"
                                          else spec.sparsity),
            "auto": spec.sparsity == "auto", "shape": list(layer.W.shape),
            "bits": sum(info["bits"] for info in infos), "weight_bits": weight_info["bits"],
            "constant_bits": sum(info["bits"] for info in infos[1:]),
            "coding": weight_info.get("coding"), "lanes": weight_info["lanes"],
            "simd": weight_info["simd"], "S": int(layer.S),
            "roms": [info["file"] for info in infos],
            "structure": (structure or {}).get(layer.name, "unstructured"),
        })
        if sparse2:
            best = sparse2[layer.name]
            rows[-1]["all_codes"] = {"coding": best["coding"], "block": best["block"],
                                     "inner": best["inner"], "weight_bits": best["bits"],
                                     "bits": best["bits"] + rows[-1]["constant_bits"]}
    return rows


def make_report(name, specs, data, settings, layers, sidecars, out, *, net_acc, z_fake_test,
                objective, search, chosen, ref_bits, base) -> dict:
    model = reference.load_model(out / "model.npz")          # what the hardware will run
    z_test = reference.run(model, data.test.x)
    z_val = reference.run(model, data.val.x)
    bits = export.model_bits(out)
    fp32_bits = 32 * fp32_parameter_count(specs)
    all_bits, _, all_codings = model_bits(layers, sparse_format.CODES)
    structure = (search.get("best") or {}).get("structure", {})
    rows = layer_rows(specs, layers, sidecars, chosen, structure, all_codings,
                      base_sparsity=settings.base_sparsity)
    chosen_record = None
    if search.get("best"):
        # the point and its measurements after the final fine-tuning; the search's own
        # (smoothed accuracy, loss, objective: one run's or, confirmed, the mean of its
        # runs) are in best_bayes
        chosen_record = {**{k: search["best"][k] for k in ("search", "index", "sparsity",
                                                           "structure")}, "bits": bits,
                         "searched_bits": sum(r["bits"] for r in rows if r["auto"]),
                         "val_accuracy": train.accuracy_of(z_val, data.val.y),
                         "note": "after final fine-tuning"}
    best_uniform = best_of(search["uniform"]) if search["uniform"] else None
    best_bayes = search.get("best")
    return {
        "name": name, "dataset": data.name, "environment": train.environment(),
        "split": {"train": len(data.train.y), "validation": len(data.val.y),
                  "test": len(data.test.y), "split_seed": 0, "stratified": True},
        "settings": {k: v for k, v in asdict(settings).items() if k != "progress"},
        "fp32_accuracy": round(net_acc[0], 6), "fp32_val_accuracy": round(net_acc[1], 6),
        "int_accuracy": round(train.accuracy_of(z_test, data.test.y), 6),
        "int_val_accuracy": round(train.accuracy_of(z_val, data.val.y), 6),
        "agreement": round(float(np.mean(np.argmax(z_test, 1) == np.argmax(z_fake_test, 1))), 6),
        "agreement_exact_outputs": bool(np.array_equal(z_test, z_fake_test)),
        "fp32_parameters": fp32_bits // 32, "fp32_bits": fp32_bits,
        "model_bits": bits, "compression": round(fp32_bits / bits, 4),
        "formats_written": sorted({info[0]["format"] for info in sidecars.values()}),
        # the same model with each weight ROM in the smallest of every coding: what a
        # decoder reading cnn_ip.sparse/2 would hold (equal to model_bits when /2 never pays)
        "all_codes": {"model_bits": all_bits, "compression": round(fp32_bits / all_bits, 4),
                      "formats": sorted({sparse_format.FORMAT2 if c["coding"] == "block"
                                         else sparse_format.FORMAT for c in all_codings.values()})},
        "classifier_output": "z[c] = acc[c] * M[c] (no shift, no clamp); argmax = class",
        "layers": rows,
        "objective": objective.describe(),
        "base_bits": ref_bits, "base_val_accuracy": round(base["accuracy"], 6),
        "base_val_smoothed_accuracy": round(base["measure"], 6),
        "search": {"bayes": search["bayes"], "uniform": search["uniform"],
                   "best_bayes": best_bayes, "best_uniform": best_uniform,
                   "chosen": chosen_record or {"bits": bits, "sparsity": {},
                                               "val_accuracy": train.accuracy_of(z_val, data.val.y)}},
    }
