"""The bundled detection data set ``digits-detect``: scikit-learn's 8x8 digits placed on
larger grayscale canvases, with their boxes and classes.  Nothing is downloaded.

How a canvas is made (all randomness from ``numpy.random.default_rng((split_seed, split))``,
so the same seed always gives the same canvases, independent of the training seed):

* the source digits are :func:`quant.data.load_dataset`'s fixed split of ``load_digits``
  (train 1,077 / validation 360 / test 360 images), so no source image appears in two
  splits' canvases;
* a canvas (``height`` x ``width``, default 64 x 64, background 0) gets 1..4 digits
  (uniform); each is a random source digit of its split, scaled by a factor uniform in
  [1.5, 3] with ``scipy.ndimage.zoom`` (bilinear, ``order=1``; output side
  ``round(8 * factor)``) applied to its 8-bit codes (the ``digits`` set's
  ``round(v * 255 / 16)``), rounded back to 8-bit: ``round(clip(zoomed, 0, 255))``;
* its box is the tight box of its non-zero pixels, in pixel edges: ``x0, y0`` the first
  column/row holding ink, ``x1, y1`` one past the last (a digit whose ink spans columns
  10..21 has ``x0 = 10``, ``x1 = 22``); the same convention everywhere (ground truth,
  detections, ``detections.json``);
* it is placed at a uniform position where its box overlaps no placed box by more than
  ``MAX_OVERLAP`` of the smaller box's area (at most ``TRIES`` positions are tried; a
  digit that finds none is left out, so a canvas can hold fewer digits than drawn);
  overlapping pixels take the maximum of the two digits.

Split sizes (canvases): train 2,000, validation 500, test 500 (``SPLIT_SIZES``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quant.data import SPLIT_SEED, load_dataset

NAME = "digits-detect"
CLASSES = 10
DEFAULT_SIZE = (64, 64)
SPLIT_SIZES = {"train": 2000, "val": 500, "test": 500}
SCALE_RANGE = (1.5, 3.0)
DIGITS_PER_CANVAS = (1, 4)
MAX_OVERLAP = 0.1
TRIES = 50


@dataclass(frozen=True)
class DetectSplit:
    """Canvases as uint8 NHWC ``(N, H, W, 1)``; per canvas its boxes ``(n, 4)`` float64
    ``x0, y0, x1, y1`` in pixels and classes ``(n,)`` int64."""
    x: np.ndarray
    boxes: tuple
    labels: tuple

    @property
    def y(self) -> np.ndarray:
        """Canvas indices (what training batches select)."""
        return np.arange(len(self.x))


@dataclass(frozen=True)
class DetectDataset:
    name: str
    train: DetectSplit
    val: DetectSplit
    test: DetectSplit
    classes: int


def scaled_digit(image_u8: np.ndarray, factor: float) -> np.ndarray:
    """One 8x8 uint8 digit scaled by ``factor`` (bilinear): uint8."""
    from scipy.ndimage import zoom
    big = zoom(image_u8.astype(np.float64), factor, order=1)
    return np.rint(np.clip(big, 0, 255)).astype(np.uint8)


def ink_box(tile: np.ndarray) -> tuple[int, int, int, int]:
    """Tight box of the non-zero pixels of ``tile``: ``(x0, y0, x1, y1)``, x1/y1 exclusive."""
    rows, cols = np.nonzero(tile.any(axis=1))[0], np.nonzero(tile.any(axis=0))[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def overlap_fraction(a, b) -> float:
    """Intersection of two boxes over the smaller one's area."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / smaller


def make_split(images_u8, labels, count: int, rng, size) -> DetectSplit:
    height, width = size
    canvases = np.zeros((count, height, width, 1), dtype=np.uint8)
    all_boxes, all_labels = [], []
    for n in range(count):
        boxes, classes = [], []
        for _ in range(rng.integers(DIGITS_PER_CANVAS[0], DIGITS_PER_CANVAS[1] + 1)):
            pick = int(rng.integers(len(labels)))
            tile = scaled_digit(images_u8[pick], float(rng.uniform(*SCALE_RANGE)))
            bx0, by0, bx1, by1 = ink_box(tile)
            th, tw = tile.shape
            for _ in range(TRIES):
                oy = int(rng.integers(-by0, height - by1 + 1))
                ox = int(rng.integers(-bx0, width - bx1 + 1))
                box = (ox + bx0, oy + by0, ox + bx1, oy + by1)
                if all(overlap_fraction(box, other) <= MAX_OVERLAP for other in boxes):
                    break
            else:
                continue
            # only the part of the tile inside the canvas (its ink always is)
            y0, x0 = max(oy, 0), max(ox, 0)
            y1, x1 = min(oy + th, height), min(ox + tw, width)
            region = canvases[n, y0:y1, x0:x1, 0]
            np.maximum(region, tile[y0 - oy:y1 - oy, x0 - ox:x1 - ox], out=region)
            boxes.append(box)
            classes.append(int(labels[pick]))
        all_boxes.append(np.array(boxes, dtype=np.float64).reshape(-1, 4))
        all_labels.append(np.array(classes, dtype=np.int64))
    return DetectSplit(canvases, tuple(all_boxes), tuple(all_labels))


def load_detect_dataset(size=DEFAULT_SIZE, *, split_seed: int = SPLIT_SEED,
                        sizes: dict | None = None) -> DetectDataset:
    """The ``digits-detect`` canvases of ``size = (height, width)`` (each side >= 24, so the
    largest digit fits)."""
    height, width = (int(v) for v in size)
    if min(height, width) < 24:
        raise ValueError(f"input: digits-detect canvases need height and width >= 24, got {height}x{width}")
    sizes = {**SPLIT_SIZES, **(sizes or {})}
    source = load_dataset("digits", split_seed=split_seed)
    splits = {}
    for index, key in enumerate(("train", "val", "test")):
        part = getattr(source, key)
        rng = np.random.default_rng((split_seed, index))
        splits[key] = make_split(part.x[..., 0], part.y, sizes[key], rng, (height, width))
    return DetectDataset(NAME, splits["train"], splits["val"], splits["test"], CLASSES)


if __name__ == "__main__":       # python -m quant.detect_data docs/digits_detect_samples.png
    import sys

    from quant.plot import plot_canvases
    test = load_detect_dataset().test
    plot_canvases(sys.argv[1], test, count=12, columns=6,
                  title="digits-detect: the first 12 test canvases (64x64) with their boxes and classes")
