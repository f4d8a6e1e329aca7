"""ROM images: ``$readmemh`` text files with a JSON sidecar (``docs/conventions.md`` §3).

An image is ``depth`` words of ``word_bits`` bits, one word a line as fixed-width hex.
The sidecar ``STEM.json`` beside ``STEM.hex`` records the format name, word width, depth,
the exact number of bits the ROM occupies (``bits = depth * word_bits``: padding, masks
and indices included, because that is what the block RAM holds) and whatever the format
adds (layer geometry, weight mode, lanes/simd packing).

Model size (Contract 3) is the sum of ``bits`` over every sidecar of a model.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

SIDECAR_KEYS = ("format", "word_bits", "depth", "bits", "file")


def hex_digits(word_bits: int) -> int:
    return max(1, (word_bits + 3) // 4)


def write_rom(out_dir, stem: str, words, word_bits: int, *, format: str, **meta) -> dict:
    """Write ``STEM.hex`` and ``STEM.json`` into ``out_dir``; return the sidecar.

    ``words`` are non-negative Python integers (or a numpy integer array) each below
    ``2**word_bits``.  Files are written to temporary names and renamed, so a failure
    leaves no partial image.
    """
    if not isinstance(word_bits, int) or word_bits < 1:
        raise ValueError(f"word_bits: must be a positive integer, got {word_bits!r}")
    words = [int(w) for w in np.asarray(words, dtype=object).ravel()]
    if not words:
        raise ValueError(f"{stem}: a ROM image needs at least one word")
    for i, w in enumerate(words):
        if w < 0 or w >> word_bits:
            raise ValueError(f"{stem}: word {i} = {w} does not fit in {word_bits} bits")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    digits = hex_digits(word_bits)
    text = "".join(f"{w:0{digits}x}\n" for w in words)
    info = {"format": format, "word_bits": word_bits, "depth": len(words),
            "bits": word_bits * len(words), "file": f"{stem}.hex", **meta}
    for name, content in ((f"{stem}.hex", text), (f"{stem}.json", json.dumps(info, indent=2) + "\n")):
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(content)
        os.replace(tmp, out_dir / name)
    return info


def read_rom(sidecar_path) -> tuple[list[int], dict]:
    """Read an image back from its sidecar path: ``(words, sidecar)``; checks the sizes."""
    sidecar_path = Path(sidecar_path)
    info = json.loads(sidecar_path.read_text())
    missing = [k for k in SIDECAR_KEYS if k not in info]
    if missing:
        raise ValueError(f"{sidecar_path}: sidecar lacks {', '.join(missing)}")
    lines = (sidecar_path.parent / info["file"]).read_text().split()
    words = [int(line, 16) for line in lines]
    if len(words) != info["depth"]:
        raise ValueError(f"{sidecar_path}: {len(words)} words, sidecar says {info['depth']}")
    if any(w >> info["word_bits"] for w in words):
        raise ValueError(f"{sidecar_path}: a word exceeds {info['word_bits']} bits")
    return words, info


def model_bits(directory) -> int:
    """Exact model size in bits: the sum of ``bits`` over all ROM sidecars in ``directory``."""
    total = 0
    for path in sorted(Path(directory).glob("*.json")):
        info = json.loads(path.read_text())
        if all(k in info for k in SIDECAR_KEYS):
            total += info["bits"]
    return total
