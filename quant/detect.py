"""The YOLO-style grid head: anchors, training targets and loss, decoding, and mAP.

**Head layout.** The last layer is a conv (``act: none``) whose output map is the grid
(``Gh x Gw`` cells of ``stride`` pixels, ``stride = canvas / grid``).  Its ``A * (5 + C)``
channels are, for anchor ``a``, channels ``a * (5 + C) + j`` with ``j`` = 0 ``tx``,
1 ``ty``, 2 ``tw``, 3 ``th``, 4 objectness ``to``, 5.. the ``C`` class logits.

**Decoding** (YOLOv2), of the real head outputs ``t`` (fp32 model: its output; integer
model: ``z[c] * out_scale[c]``, ``out_scale`` stored in ``model.npz``)::

    cx = (gx + sigmoid(tx)) * stride          cy = (gy + sigmoid(ty)) * stride
    w  = anchor_w * exp(tw)                   h  = anchor_h * exp(th)
    class = argmax(class logits)              score = sigmoid(to) * softmax(logits)[class]

boxes ``cx -+ w/2, cy -+ h/2`` clipped to the canvas; those with ``score >= CONF`` go
through per-class non-maximum suppression (``cv2.dnn.NMSBoxesBatched``, IoU > ``NMS_IOU``
suppressed) and the ``MAX_DETECTIONS`` best per canvas are kept.

**Anchors**: k-means (scikit-learn ``KMeans``, Euclidean on ``(w, h)``, ``n_init=10``,
``random_state`` = the seed) over the training boxes, sorted by area.

**Targets and loss**: a box is assigned to the cell holding its centre and to the anchor
whose shape has the highest IoU with it (both centred).  Per canvas, summed and averaged
over the batch: binary cross-entropy of objectness on every anchor of every cell (1 where
assigned), and on assigned anchors binary cross-entropy of ``sigmoid(tx), sigmoid(ty)``
against the centre's offset in its cell, ``BOX_WEIGHT`` x squared error of ``tw, th``
against ``log(w / anchor_w), log(h / anchor_h)``, and cross-entropy of the class.

**mAP** (:func:`mean_average_precision`): pycocotools ``COCOeval`` on boxes, all areas,
up to 100 detections a canvas: ``map50`` is COCO's AP at IoU 0.5 (101-point interpolated
precision, averaged over the classes present in the ground truth), ``map`` is COCO's
AP averaged over IoU 0.50:0.05:0.95.
"""
from __future__ import annotations

import contextlib
import io
import json
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

CONF = 0.01
NMS_IOU = 0.45
MAX_DETECTIONS = 100
BOX_WEIGHT = 2.0
MAX_LOG_SCALE = 4.0      # exp(tw) capped: keeps untrained outputs from overflowing


@dataclass(frozen=True)
class Head:
    anchors: tuple           # ((w, h), ...) in pixels
    classes: int
    grid: tuple              # (Gh, Gw)
    stride: tuple            # (sy, sx) pixels per cell
    canvas: tuple            # (H, W)

    @property
    def per_anchor(self) -> int:
        return 5 + self.classes

    @property
    def channels(self) -> int:
        return len(self.anchors) * self.per_anchor

    def meta(self) -> dict:
        info = asdict(self)
        info.update(layout="channel a*(5+C)+j: j=0 tx, 1 ty, 2 tw, 3 th, 4 objectness, 5.. class logits",
                    conf=CONF, nms_iou=NMS_IOU, max_detections=MAX_DETECTIONS)
        return info


def kmeans_anchors(boxes, count: int, seed: int) -> tuple:
    from sklearn.cluster import KMeans
    wh = np.concatenate([b[:, 2:] - b[:, :2] for b in boxes])
    centres = KMeans(n_clusters=count, n_init=10, random_state=seed).fit(wh).cluster_centers_
    centres = centres[np.argsort(centres.prod(1), kind="stable")]
    return tuple((round(float(w), 4), round(float(h), 4)) for w, h in centres)


def make_head(specs, data, anchors: int, seed: int) -> Head:
    last = specs[-1]
    canvas = tuple(data.train.x.shape[1:3])
    grid = tuple(last.out_shape[1:])
    if last.out != anchors * (5 + data.classes):
        raise ValueError(f"layers[-1].out: a head with {anchors} anchors and {data.classes} classes "
                         f"has {anchors * (5 + data.classes)} outputs, got {last.out}")
    if canvas[0] % grid[0] or canvas[1] % grid[1]:
        raise ValueError(f"input: canvas {canvas} is not a whole number of {grid} grid cells")
    return Head(kmeans_anchors(data.train.boxes, anchors, seed), data.classes, grid,
                (canvas[0] // grid[0], canvas[1] // grid[1]), canvas)


def shape_iou(w, h, anchors) -> np.ndarray:
    a = np.asarray(anchors, dtype=np.float64)
    inter = np.minimum(w, a[:, 0]) * np.minimum(h, a[:, 1])
    return inter / (w * h + a[:, 0] * a[:, 1] - inter)


@dataclass
class Targets:
    obj: torch.Tensor        # (N, A, Gh, Gw) 0/1
    xy: torch.Tensor         # (N, A, 2, Gh, Gw) centre offset in the cell, 0..1
    wh: torch.Tensor         # (N, A, 2, Gh, Gw) log(size / anchor)
    cls: torch.Tensor        # (N, A, Gh, Gw) class, -1 where unassigned


def build_targets(head: Head, split) -> Targets:
    n, a = len(split.x), len(head.anchors)
    gh, gw = head.grid
    sy, sx = head.stride
    obj = np.zeros((n, a, gh, gw))
    xy = np.zeros((n, a, 2, gh, gw))
    wh = np.zeros((n, a, 2, gh, gw))
    cls = np.full((n, a, gh, gw), -1, dtype=np.int64)
    for i, (boxes, labels) in enumerate(zip(split.boxes, split.labels)):
        for (x0, y0, x1, y1), label in zip(boxes, labels):
            cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
            gx, gy = min(int(cx // sx), gw - 1), min(int(cy // sy), gh - 1)
            k = int(np.argmax(shape_iou(w, h, head.anchors)))
            obj[i, k, gy, gx] = 1
            xy[i, k, :, gy, gx] = cx / sx - gx, cy / sy - gy
            wh[i, k, :, gy, gx] = np.log(w / head.anchors[k][0]), np.log(h / head.anchors[k][1])
            cls[i, k, gy, gx] = label
    t = lambda v: torch.from_numpy(v)  # noqa: E731
    return Targets(t(obj), t(xy), t(wh), t(cls))


def detection_loss(head: Head, out: torch.Tensor, targets: Targets, idx) -> torch.Tensor:
    """The loss of real head outputs ``out`` (B, A*(5+C), Gh, Gw) for canvases ``idx``."""
    b = out.shape[0]
    p = out.view(b, len(head.anchors), head.per_anchor, *head.grid)
    obj = targets.obj[idx].to(out.dtype)
    pos = obj > 0
    loss = F.binary_cross_entropy_with_logits(p[:, :, 4], obj, reduction="sum")
    if pos.any():
        pxy = p[:, :, 0:2].permute(0, 1, 3, 4, 2)[pos]
        pwh = p[:, :, 2:4].permute(0, 1, 3, 4, 2)[pos]
        pcls = p[:, :, 5:].permute(0, 1, 3, 4, 2)[pos]
        txy = targets.xy[idx].permute(0, 1, 3, 4, 2)[pos].to(out.dtype)
        twh = targets.wh[idx].permute(0, 1, 3, 4, 2)[pos].to(out.dtype)
        loss = loss + F.binary_cross_entropy_with_logits(pxy, txy, reduction="sum")
        loss = loss + BOX_WEIGHT * ((pwh - twh) ** 2).sum()
        loss = loss + F.cross_entropy(pcls, targets.cls[idx][pos], reduction="sum")
    return loss / b


def distillation_loss(head: Head, out: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """How far real head outputs ``out`` are from a teacher's ``teacher`` (same shape, the
    fp32 model's outputs on the same canvases), as the detection loss with the teacher's
    soft targets: binary cross-entropy of objectness against ``sigmoid(teacher)`` on every
    anchor; on every anchor, weighted by the teacher's objectness probability, binary
    cross-entropy of ``sigmoid(tx), sigmoid(ty)`` against the teacher's, ``BOX_WEIGHT`` x
    squared error of ``tw, th`` and cross-entropy of the class against the teacher's
    softmax.  Summed over a canvas, averaged over the batch."""
    b = out.shape[0]
    p = out.view(b, len(head.anchors), head.per_anchor, *head.grid)
    q = teacher.to(out.dtype).view_as(p)
    weight = torch.sigmoid(q[:, :, 4])
    loss = F.binary_cross_entropy_with_logits(p[:, :, 4], weight, reduction="sum")
    xy = F.binary_cross_entropy_with_logits(p[:, :, 0:2], torch.sigmoid(q[:, :, 0:2]),
                                            reduction="none").sum(2)
    wh = BOX_WEIGHT * ((p[:, :, 2:4] - q[:, :, 2:4]) ** 2).sum(2)
    cls = -(F.softmax(q[:, :, 5:], 2) * F.log_softmax(p[:, :, 5:], 2)).sum(2)
    return (loss + (weight * (xy + wh + cls)).sum()) / b


# --------------------------------------------------------------------------- decoding

def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def decode(head: Head, t) -> list[dict]:
    """Real head outputs ``t`` (N, Gh, Gw, A*(5+C)) NHWC -> per canvas
    ``{"boxes": (k, 4) x0 y0 x1 y1, "scores": (k,), "labels": (k,)}``, best first."""
    import cv2
    t = np.asarray(t, dtype=np.float64)
    n, gh, gw, _ = t.shape
    a = len(head.anchors)
    p = t.reshape(n, gh, gw, a, head.per_anchor)
    gy, gx = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
    sy, sx = head.stride
    anchors = np.asarray(head.anchors, dtype=np.float64)
    cx = (gx[..., None] + sigmoid(p[..., 0])) * sx
    cy = (gy[..., None] + sigmoid(p[..., 1])) * sy
    w = anchors[:, 0] * np.exp(np.minimum(p[..., 2], MAX_LOG_SCALE))
    h = anchors[:, 1] * np.exp(np.minimum(p[..., 3], MAX_LOG_SCALE))
    logits = p[..., 5:]
    soft = np.exp(logits - logits.max(-1, keepdims=True))
    soft /= soft.sum(-1, keepdims=True)
    label = np.argmax(soft, -1)
    score = sigmoid(p[..., 4]) * np.take_along_axis(soft, label[..., None], -1)[..., 0]
    height, width = head.canvas
    boxes = np.stack([np.clip(cx - w / 2, 0, width), np.clip(cy - h / 2, 0, height),
                      np.clip(cx + w / 2, 0, width), np.clip(cy + h / 2, 0, height)], -1)
    results = []
    for i in range(n):
        bx, sc, lb = boxes[i].reshape(-1, 4), score[i].ravel(), label[i].ravel()
        keep = np.nonzero(sc >= CONF)[0]
        if len(keep):
            xywh = [(float(x0), float(y0), float(x1 - x0), float(y1 - y0)) for x0, y0, x1, y1 in bx[keep]]
            chosen = cv2.dnn.NMSBoxesBatched(xywh, sc[keep].astype(float).tolist(),
                                             lb[keep].astype(int).tolist(), CONF, NMS_IOU)
            keep = keep[np.asarray(chosen, dtype=np.int64).reshape(-1)]
            keep = keep[np.argsort(-sc[keep], kind="stable")][:MAX_DETECTIONS]
        results.append({"boxes": bx[keep], "scores": sc[keep], "labels": lb[keep].astype(np.int64)})
    return results


def real_outputs(z, out_scale) -> np.ndarray:
    """The integer head's ``z`` (NHWC) in real units: ``z[c] * out_scale[c]``."""
    return np.asarray(z, dtype=np.float64) * np.asarray(out_scale, dtype=np.float64)


# --------------------------------------------------------------------------- mAP

def mean_average_precision(detections, split, classes: int = 10) -> dict:
    """pycocotools ``COCOeval`` (see the module docstring): ``{"map50", "map"}``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gt = {"images": [{"id": i} for i in range(len(split.x))],
          "categories": [{"id": c + 1} for c in range(classes)], "annotations": []}
    for i, (boxes, labels) in enumerate(zip(split.boxes, split.labels)):
        for (x0, y0, x1, y1), label in zip(boxes, labels):
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i,
                                      "category_id": int(label) + 1, "iscrowd": 0,
                                      "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                                      "area": float((x1 - x0) * (y1 - y0))})
    results = [{"image_id": i, "category_id": int(label) + 1, "score": float(score),
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]}
               for i, det in enumerate(detections)
               for (x0, y0, x1, y1), score, label in zip(det["boxes"], det["scores"], det["labels"])]
    if not results:
        return {"map50": 0.0, "map": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        evaluation = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {"map50": float(evaluation.stats[1]), "map": float(evaluation.stats[0])}


# --------------------------------------------------------------------------- files

def round_detections(detections) -> list[dict]:
    """Scores and boxes rounded as :func:`detection_records` writes them, so that mAP
    computed here equals mAP recomputed from ``detections.json`` (rounding can tie scores)."""
    return [{"boxes": np.array([[round(float(v), 4) for v in box] for box in d["boxes"]]).reshape(-1, 4),
             "scores": np.array([round(float(v), 6) for v in d["scores"]]), "labels": d["labels"]}
            for d in detections]


def detection_records(detections) -> list[dict]:
    return [{"image_id": i, "class": int(label), "score": round(float(score), 6),
             "box": [round(float(v), 4) for v in box]}
            for i, det in enumerate(detections)
            for box, score, label in zip(det["boxes"], det["scores"], det["labels"])]


def ground_truth_records(split) -> list[dict]:
    return [{"image_id": i, "class": int(label), "box": [float(v) for v in box]}
            for i, (boxes, labels) in enumerate(zip(split.boxes, split.labels))
            for box, label in zip(boxes, labels)]


def write_json(path, records) -> None:
    with open(path, "w") as handle:
        handle.write("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n")
