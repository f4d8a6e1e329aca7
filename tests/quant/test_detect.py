"""digits-detect canvases (determinism, boxes), the grid head's decoding against a case
computed by hand, and mAP through pycocotools."""
import math

import numpy as np
import pytest
import torch

from quant import detect
from quant.detect_data import ink_box, load_detect_dataset

SMALL = {"train": 40, "val": 10, "test": 30}


@pytest.fixture(scope="module")
def data():
    return load_detect_dataset((48, 40), sizes=SMALL)


def test_canvases_are_deterministic_and_seeded(data):
    again = load_detect_dataset((48, 40), sizes=SMALL)
    other = load_detect_dataset((48, 40), sizes=SMALL, split_seed=1)
    for key in ("train", "val", "test"):
        a, b = getattr(data, key), getattr(again, key)
        assert np.array_equal(a.x, b.x)
        assert all(np.array_equal(p, q) for p, q in zip(a.boxes, b.boxes))
        assert all(np.array_equal(p, q) for p, q in zip(a.labels, b.labels))
    assert not np.array_equal(data.test.x, other.test.x)
    assert data.test.x.shape == (30, 48, 40, 1) and data.test.x.dtype == np.uint8
    # a longer split starts with the same canvases: each split has its own random stream
    longer = load_detect_dataset((48, 40), sizes={**SMALL, "test": 31})
    assert np.array_equal(longer.test.x[:30], data.test.x)


def test_boxes_are_the_tight_ink_boxes(data):
    singles = 0
    for split in (data.train, data.val, data.test):
        for canvas, boxes, labels in zip(split.x[..., 0], split.boxes, split.labels):
            assert 1 <= len(boxes) <= 4 and len(labels) == len(boxes)
            assert set(labels.tolist()) <= set(range(10))
            w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
            assert (w >= 1).all() and (h <= 24).all() and (h >= 8).all() and (w <= 24).all()
            assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 40).all() and (boxes[:, 3] <= 48).all()
            if len(boxes) == 1:                      # the canvas's ink is this digit's alone
                singles += 1
                assert tuple(boxes[0]) == ink_box(canvas)
            covered = np.zeros(canvas.shape, bool)
            for x0, y0, x1, y1 in boxes.astype(int):
                covered[y0:y1, x0:x1] = True
                # tight: ink on every edge row and column of the box
                for edge in (canvas[y0, x0:x1], canvas[y1 - 1, x0:x1], canvas[y0:y1, x0], canvas[y0:y1, x1 - 1]):
                    assert edge.any()
            assert not canvas[~covered].any()        # no ink outside the boxes
    assert singles > 5


def test_ink_box_is_pixel_edges():
    tile = np.zeros((6, 7), np.uint8)
    tile[2, 3] = tile[4, 5] = 9
    assert ink_box(tile) == (3, 2, 6, 5)


def logit(p):
    return math.log(p / (1 - p))


def test_decode_matches_a_hand_computed_case():
    head = detect.Head(anchors=((10.0, 20.0),), classes=2, grid=(2, 2), stride=(8, 8), canvas=(16, 16))
    t = np.zeros((1, 2, 2, 7))
    t[..., 4] = -30                                   # no object anywhere ...
    t[0, 1, 0] = [0, math.log(3), math.log(2), 0, math.log(9), 0, math.log(3)]   # ... but here
    (det,) = detect.decode(head, t)
    # cx = (0 + 0.5) * 8 = 4, cy = (1 + 0.75) * 8 = 14, w = 20, h = 20, clipped to 16x16;
    # class 1 (softmax 0.75), score = 0.9 * 0.75
    assert det["labels"].tolist() == [1]
    assert np.allclose(det["boxes"], [[0, 4, 14, 16]])
    assert np.allclose(det["scores"], [0.675])


def test_decode_suppresses_overlaps_of_one_class_only():
    head = detect.Head(anchors=((8.0, 8.0), (8.0, 8.0)), classes=2, grid=(1, 2), stride=(8, 8),
                       canvas=(8, 16))
    t = np.zeros((1, 1, 2, 14))
    t[..., 4::7] = -30
    # cell 0: two anchors, same box, same class -> one survives (the better score)
    t[0, 0, 0, 0:7] = [0, 0, 0, 0, logit(0.8), 5, 0]
    t[0, 0, 0, 7:14] = [0, 0, 0, 0, logit(0.6), 5, 0]
    # cell 1: the same box twice with different classes -> both stay
    t[0, 0, 1, 0:7] = [0, 0, 0, 0, logit(0.7), 5, 0]
    t[0, 0, 1, 7:14] = [0, 0, 0, 0, logit(0.5), 0, 5]
    (det,) = detect.decode(head, t)
    assert det["labels"].tolist() == [0, 0, 1]
    assert np.allclose(det["boxes"], [[0, 0, 8, 8], [8, 0, 16, 8], [8, 0, 16, 8]])
    assert det["scores"][0] > det["scores"][1] > det["scores"][2]


def test_map_of_perfect_detections_is_one(data):
    split = data.test
    perfect = [{"boxes": b, "scores": np.ones(len(b)), "labels": l}
               for b, l in zip(split.boxes, split.labels)]
    assert detect.mean_average_precision(perfect, split) == {"map50": 1.0, "map": 1.0}
    wrong = [{**d, "labels": (d["labels"] + 1) % 10} for d in perfect]
    assert detect.mean_average_precision(wrong, split) == {"map50": 0.0, "map": 0.0}
    # boxes shifted to IoU 0.6..0.7 count at 0.5 but not at the stricter thresholds
    shifted = [{**d, "boxes": d["boxes"] + np.array([1, 0, 1, 0]) * 0.2 * (d["boxes"][:, 2:3] - d["boxes"][:, 0:1])}
               for d in perfect]
    result = detect.mean_average_precision(shifted, split)
    assert result["map50"] == 1.0 and result["map"] < 0.5


def test_targets_and_loss_prefer_the_truth(data):
    head = detect.Head(anchors=((10.0, 14.0), (18.0, 20.0)), classes=10, grid=(6, 5),
                       stride=(8, 8), canvas=(48, 40))
    targets = detect.build_targets(head, data.train)
    assert int(targets.obj.sum()) <= sum(len(b) for b in data.train.boxes)
    assert ((targets.cls >= 0) == (targets.obj > 0)).all()
    # outputs that encode the targets exactly have a lower loss than zeros
    idx = torch.arange(8)
    good = torch.zeros(8, 2, 15, 6, 5, dtype=torch.float64)
    good[:, :, 4] = torch.where(targets.obj[idx] > 0, 20.0, -20.0)
    good[:, :, 0:2] = torch.logit(targets.xy[idx].clamp(1e-6, 1 - 1e-6))
    good[:, :, 2:4] = targets.wh[idx]
    good[:, :, 5:] = 20 * torch.nn.functional.one_hot(targets.cls[idx].clamp(min=0), 10).permute(0, 1, 4, 2, 3)
    zero = torch.zeros_like(good)
    assert detect.detection_loss(head, good.view(8, 30, 6, 5), targets, idx) < \
        0.5 * detect.detection_loss(head, zero.view(8, 30, 6, 5), targets, idx)


def test_example_plan_has_a_head_on_an_8x8_grid():
    from cnn_ip.plan import load_plan
    from quant.data import load_dataset
    plan = load_plan("examples/digits_detect.yaml")
    data = load_dataset(plan.dataset, size=plan.input_shape[1:])
    head = detect.make_head(plan.layers, data, plan.detect["anchors"], seed=0)
    assert head.grid == (8, 8) and head.stride == (8, 8) and head.channels == plan.layers[-1].out
    assert len(data.test.x) >= 500
    areas = [w * h for w, h in head.anchors]
    assert areas == sorted(areas) and all(12 <= h <= 24 for _, h in head.anchors)


def test_distillation_loss_is_least_at_the_teacher():
    head = detect.Head(anchors=((10.0, 14.0), (18.0, 20.0)), classes=10, grid=(3, 2),
                       stride=(8, 8), canvas=(24, 16))
    teacher = 3 * torch.randn(4, 30, 3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    student = teacher.clone().requires_grad_()
    at_teacher = detect.distillation_loss(head, student, teacher)
    at_teacher.backward()
    assert student.grad.abs().max() < 1e-12           # every term's minimum is the teacher
    for channel in (0, 2, 4, 7):                      # x, w, objectness, a class logit
        moved = teacher.clone()
        moved[:, channel::15] += 1.0
        assert detect.distillation_loss(head, moved, teacher) > at_teacher + 1e-3
    # a box/class error counts in proportion to the teacher's objectness
    confident, unsure = teacher.clone(), teacher.clone()
    confident[:, 4::15], unsure[:, 4::15] = 10.0, -10.0
    shifted = lambda t: t + torch.where(torch.arange(30).remainder(15).eq(2), 1.0, 0.0).view(1, 30, 1, 1)  # noqa: E731
    gain = lambda t: detect.distillation_loss(head, shifted(t), t) - detect.distillation_loss(head, t, t)  # noqa: E731
    assert gain(confident) > 100 * gain(unsure)
