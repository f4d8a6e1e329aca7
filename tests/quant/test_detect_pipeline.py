"""A reduced end-to-end quantize run of a detector: its report's mAP is recomputable from
its own files, and ``model.npz`` alone decodes to the written detections."""
import json

import numpy as np
from torch import nn

from quant import detect
from quant.detect_data import DetectDataset, DetectSplit, load_detect_dataset
from quant.detect_pipeline import integer_detections
from quant.model import layers_from_module
from quant.pipeline import Settings, quantize
from quant.rom_image import model_bits


def tiny_detector():
    module = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.LeakyReLU(0.125), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1), nn.LeakyReLU(0.125), nn.MaxPool2d(2),
        nn.Conv2d(8, 2 * 15, 1))
    specs, _ = layers_from_module(module, (1, 32, 32), weights="ternary", act_bits=6)
    specs[0].weights, specs[0].wbits = "int8", 8
    specs[2].sparsity = specs[4].sparsity = "auto"
    return specs


def test_detector_end_to_end(tmp_path):
    full = load_detect_dataset((32, 32), sizes={"train": 96, "val": 32, "test": 32})
    data = DetectDataset(full.name, full.train, full.val, full.test, full.classes)
    settings = Settings(epochs=2, qat_epochs=1, search_epochs=1, final_epochs=1, evaluations=1,
                        progress=False)
    report = quantize(tiny_detector(), data, tmp_path, settings, name="tiny", detect={"anchors": 2})
    assert report["task"] == "detection" and report["agreement_exact_outputs"]
    assert report["model_bits"] == model_bits(tmp_path) == sum(r["bits"] for r in report["layers"])
    assert report["compression"] == round(report["fp32_bits"] / report["model_bits"], 4)
    assert [r["weights"] for r in report["layers"]] == ["int8", "ternary", "ternary"]
    # mAP from the written files (boxes x0 y0 x1 y1) equals the report's
    records = json.loads((tmp_path / "detections.json").read_text())
    truth = json.loads((tmp_path / "ground_truth.json").read_text())
    n = len(data.test.x)
    gt_split = DetectSplit(data.test.x,
                           tuple(np.array([r["box"] for r in truth if r["image_id"] == i]).reshape(-1, 4) for i in range(n)),
                           tuple(np.array([r["class"] for r in truth if r["image_id"] == i], int) for i in range(n)))
    dets = [{"boxes": np.array([r["box"] for r in records if r["image_id"] == i]).reshape(-1, 4),
             "scores": np.array([r["score"] for r in records if r["image_id"] == i]),
             "labels": np.array([r["class"] for r in records if r["image_id"] == i], int)} for i in range(n)]
    recomputed = detect.mean_average_precision(dets, gt_split)
    assert abs(recomputed["map50"] - report["int_map50"]) < 1e-4
    assert abs(recomputed["map"] - report["int_map"]) < 1e-4
    assert len(records) == report["detections"]
    assert all(set(r) == {"image_id", "class", "score", "box"} for r in records[:5])
    # model.npz alone (integer model + stored head scale) gives these detections
    again, z = integer_detections(tmp_path / "model.npz", data.test)
    assert z.dtype == np.int64 and z.shape == (n, 8, 8, 30)
    assert sum(len(d["scores"]) for d in again) == len(records)
    assert len(report["head"]["out_scale"]) == 30
    for name in ("detections.png", "search.png"):
        assert (tmp_path / name).stat().st_size > 1000
