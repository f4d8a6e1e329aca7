"""The bundled data set ``digits`` and its fixed split.

scikit-learn's ``load_digits`` ships inside the package (1,797 images, 8x8, pixel values
0..16, 10 classes); nothing is downloaded.  Pixels become the network's 8-bit unsigned
input (DESIGN.md Contract 2) as ``round(v * 255 / 16)``, so 16 -> 255.

The split is stratified by class and fixed by ``split_seed`` (default 0, independent of
the training seed so that changing the seed never changes the test set): 60 % train,
20 % validation (used by the sparsity search), 20 % test (reported, never used to choose).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLIT_SEED = 0


@dataclass(frozen=True)
class Split:
    """Images as uint8 NHWC ``(N, H, W, C)`` and integer labels."""
    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    classes: int


def digits_u8() -> tuple[np.ndarray, np.ndarray]:
    """All digits as uint8 ``(1797, 8, 8, 1)`` images and int64 labels."""
    from sklearn.datasets import load_digits
    bunch = load_digits()
    x = np.rint(bunch.images * (255 / 16)).astype(np.uint8)[..., None]
    return x, bunch.target.astype(np.int64)


def load_dataset(name: str = "digits", *, split_seed: int = SPLIT_SEED, size=None):
    """``digits`` (a :class:`Dataset`) or ``digits-detect`` (canvases of ``size`` = (height,
    width), a :class:`quant.detect_data.DetectDataset`)."""
    from sklearn.model_selection import train_test_split
    if name == "digits-detect":
        from quant.detect_data import DEFAULT_SIZE, load_detect_dataset
        return load_detect_dataset(size or DEFAULT_SIZE, split_seed=split_seed)
    if name != "digits":
        raise ValueError(f"dataset: unknown data set {name!r} (known: digits, digits-detect)")
    x, y = digits_u8()
    index = np.arange(len(y))
    rest, test = train_test_split(index, test_size=0.2, stratify=y, random_state=split_seed)
    train, val = train_test_split(rest, test_size=0.25, stratify=y[rest], random_state=split_seed)
    pick = lambda i: Split(x[np.sort(i)], y[np.sort(i)])  # noqa: E731
    return Dataset(name, pick(train), pick(val), pick(test), classes=10)
