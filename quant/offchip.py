"""The off-chip weight image of frame-based layers: ``weights.bin`` and ``memory_map.json``
(docs/conventions.md, §6; Contract 7's off-chip bytes per frame).

A frame-based conv fetches its weights one output-channel group at a time (``L`` output
channels: the lanes of its MAC), once per frame.  So its image is its ``Cout/L`` *group
images*, each self-contained in the sparse format (``quant.sparse_format``, docs/sparse_format.md):

* group ``g`` is ``sparse_format.encode`` of rows ``[g*L, (g+1)*L)`` of the layer's weight
  matrix with lanes ``L`` and simd ``S``: its own beats, its own final padding;
* one coding and one word width for the whole layer (the stage has one decoder): the
  coding the layer's beats choose (``sparse_format.choose_coding``, as the planner's
  on-chip figure does) and ``word_bits`` = the longest beat of the layer; a group's bit
  stream is cut into words of that width (``depth`` words, the last padded with zeros).
  The coding is one of ``cnn_ip.sparse/1``'s (``sparse_format.FIRST_CODES``) unless
  ``codes`` says otherwise: the decoder reads ``/2`` group images too (``source=stream``
  with ``coding=block``, ``block``, ``inner``), but the frame stage
  (``assemblies.conv_frame``) passes it only a coding and a word width, so the image
  and the map stay ``/1`` until it passes the block coding's two choices as well;
* in memory a group is its words as one bit stream, least significant bit first: stream
  bit ``i`` (bit ``i % word_bits`` of word ``i // word_bits``) is bit ``i % 8`` of byte
  ``i // 8``; with the bus's little-endian beats (``tile_dma``: the lower address in
  ``tdata[7:0]``) bus beat ``j`` carries stream bits ``[j*8*bus_bytes, (j+1)*8*bus_bytes)``.
  The group is zero-padded to whole bus beats: its length is what the DMA reads, with
  one command (:func:`fetch_rows`: rows of at most 65535 bytes, all of one length);
* every group starts on a 64-byte boundary (so the DMA fetches it with one command), the
  layers follow each other in the order given, the groups of a layer in ``g`` order.

``memory_map.json`` (:func:`layout`): ``{"base": address of byte 0 of weights.bin,
"bus_bytes": the AXI data width in bytes, "layers": {name: {"offset": bytes from base of
the layer's first group, "bytes": from there to the end of its last group, "groups":
[[offset from base, bytes], ...]}}}``; a group's ``bytes`` are whole bus beats.

Off-chip bytes a frame of a layer (:func:`offchip_bytes`, the planner's figure): the sum of
its groups' ``bytes`` (the alignment gaps between groups are never read).

Pure numpy; :func:`read_words` takes the bytes and the map back to a group's words.
"""
from __future__ import annotations

import numpy as np

from quant import sparse_format, weight_modes
from quant.sparse_format import SparseImage

ALIGN = 64                   # bytes: every group starts on such a boundary
BUS_BYTES = (4, 8, 16)       # tile_dma's data_bits 32 / 64 / 128
ADDRESS_LIMIT = 1 << 32      # tile_dma addresses are 32 bits
ROW_LIMIT = (1 << 16) - 1    # tile_dma: bytes per row and rows are 16-bit fields


def _mode(weights, wbits=None):
    """``(weights, wbits)`` from a plan mode word (``"int4"``) or a kind and ``wbits``."""
    if weights in weight_modes.PLAN_NAMES and weights.startswith("int"):
        return weight_modes.parse(weights)
    weight_modes.check(weights, wbits)
    return weights, weight_modes.normal_wbits(weights, wbits)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _check_bus(bus_bytes) -> None:
    if bus_bytes not in BUS_BYTES:
        raise ValueError(f"bus_bytes: must be one of {', '.join(map(str, BUS_BYTES))}, "
                         f"got {bus_bytes!r}")


def pattern_bits(nonzero, weights, wbits, lanes, simd) -> tuple[str, np.ndarray]:
    """The coding a layer's beats choose at this fold and each beat's bits, from its zero
    pattern alone (what the writer computes, without building words)."""
    beats = sparse_format.to_beats(np.asarray(nonzero, dtype=np.int8), lanes, simd)
    coding = sparse_format.choose_coding(beats, weights=weights, wbits=wbits)
    return coding, sparse_format.beat_bits(beats, weights=weights, wbits=wbits, coding=coding)


def layer_format(W, *, weights, wbits=None, lanes, simd) -> tuple[str, int]:
    """``(coding, word_bits)`` shared by every group image of the layer (``/1``)."""
    code = layer_code(W, weights=weights, wbits=wbits, lanes=lanes, simd=simd)
    return code["coding"], code["word_bits"]


def layer_code(W, *, weights, wbits=None, lanes, simd, codes=sparse_format.FIRST_CODES,
               block=None, inner=None) -> dict:
    """The coding every group image of the layer takes, the smallest of ``codes`` over
    the whole layer (``sparse_format.best_code``: ``coding``, ``block``, ``inner``,
    ``word_bits`` = its longest record, ...); ``block``/``inner`` fix the block coding's."""
    weights, wbits = _mode(weights, wbits)
    W = sparse_format.check_matrix(W, weights=weights, wbits=wbits, lanes=lanes, simd=simd)
    return sparse_format.best_code(sparse_format.to_beats(W != 0, lanes, simd),
                                   weights=weights, wbits=wbits, codes=codes, block=block,
                                   inner=inner)


def group_images(W, *, weights, wbits=None, lanes, simd, codes=sparse_format.FIRST_CODES,
                 block=None, inner=None) -> list[SparseImage]:
    """The layer's ``Cout/L`` group images (see the module docstring); each one's ``meta``
    is its sparse-format sidecar, so ``sparse_format.decode(image.words, image.meta)``
    gives the group's rows back.  ``codes``, ``block``, ``inner``: :func:`layer_code`."""
    weights, wbits = _mode(weights, wbits)
    code = layer_code(W, weights=weights, wbits=wbits, lanes=lanes, simd=simd, codes=codes,
                      block=block, inner=inner)
    word_bits = code["word_bits"]
    W = np.asarray(W)
    images = []
    for g in range(W.shape[0] // lanes):
        own = sparse_format.encode(W[g * lanes:(g + 1) * lanes], weights=weights, wbits=wbits,
                                   lanes=lanes, simd=simd, coding=code["coding"],
                                   block=code["block"], inner=code["inner"])
        stream = sparse_format.words_to_bits(own.words, own.word_bits)[:own.meta["stream_bits"]]
        words = sparse_format.bits_to_words(stream, word_bits)
        depth = len(words)
        meta = {**own.meta, "word_bits": word_bits, "depth": depth, "bits": depth * word_bits,
                "pad_bits": depth * word_bits - len(stream), "group": g,
                "bits_per_weight": round(depth * word_bits / own.meta["cout"]
                                         / own.meta["reduce"], 6)}
        images.append(SparseImage(words=words, word_bits=word_bits, meta=meta))
    return images


def fetch_rows(nbytes: int, bus_bytes: int) -> tuple[int, int]:
    """``(bytes_per_row, rows)`` of the one ``tile_dma`` read command that fetches a group
    of ``nbytes`` (stride = bytes per row: the rows are contiguous).  Bytes per row are
    whole bus beats and at most 65535 (a 16-bit field), so a group beyond that is cut
    into equal rows; ``rows * bytes_per_row >= nbytes`` by less than ``rows`` beats."""
    _check_bus(bus_bytes)
    widest = ROW_LIMIT // bus_bytes * bus_bytes
    rows = _ceil(nbytes, widest)
    if rows > ROW_LIMIT:
        raise ValueError(f"nbytes: a group of {nbytes} bytes needs more than {ROW_LIMIT} rows "
                         f"of one DMA command")
    return _ceil(_ceil(nbytes, rows), bus_bytes) * bus_bytes, rows


def beat_bytes(bits: int, bus_bytes: int) -> int:
    """The memory a group of ``bits`` bits takes: whole bus beats, as many as its one
    DMA command reads (:func:`fetch_rows`)."""
    width, rows = fetch_rows(_ceil(bits, 8), bus_bytes)
    return width * rows


def aligned_offsets(sizes) -> list[int]:
    """Each group's offset from the first when groups of ``sizes`` bytes follow each other,
    each starting on an :data:`ALIGN` boundary."""
    offsets, at = [], 0
    for size in sizes:
        offsets.append(at)
        at = _ceil(at + size, ALIGN) * ALIGN
    return offsets


_FIGURES: dict = {}          # group_figures by zero pattern and fold: the planner asks often


def group_figures(W, *, weights, wbits=None, lanes, simd, bus_bytes) -> dict:
    """The layer's group images by their sizes alone, no words built (what the planner
    and the frame stage's parameters need): ``coding``, ``word_bits``, each group's
    ``depths`` (words), ``bytes`` in memory (whole bus beats) and ``offsets`` from the
    first group, and ``beats`` a group.  Sizes depend on the zero pattern alone (a
    record's length never depends on the values): ``W`` may be that pattern (a boolean
    matrix), and results are memoised by it.  ``W``'s shape must suit the fold."""
    weights, wbits = _mode(weights, wbits)
    _check_bus(bus_bytes)
    W = np.asarray(W)
    nonzero = W != 0
    key = (np.packbits(nonzero).tobytes(), W.shape, weights, wbits, lanes, simd, bus_bytes)
    if key not in _FIGURES:
        coding, bits = pattern_bits(nonzero, weights, wbits, lanes, simd)
        word_bits = int(bits.max())
        groups = W.shape[0] // lanes
        depths = [_ceil(int(b), word_bits) for b in bits.reshape(groups, -1).sum(axis=1)]
        nbytes = [beat_bytes(d * word_bits, bus_bytes) for d in depths]
        if len(_FIGURES) >= 1024:
            _FIGURES.clear()
        _FIGURES[key] = {"coding": coding, "word_bits": word_bits, "depths": depths,
                         "bytes": nbytes, "offsets": aligned_offsets(nbytes),
                         "beats": len(bits) // groups}
    figures = _FIGURES[key]
    return {**figures, "depths": list(figures["depths"]), "bytes": list(figures["bytes"]),
            "offsets": list(figures["offsets"])}


def group_bytes(W, *, weights, wbits=None, lanes, simd, bus_bytes) -> list[int]:
    """Each group image's length in memory (whole bus beats): :func:`group_figures`."""
    return group_figures(W, weights=weights, wbits=wbits, lanes=lanes, simd=simd,
                         bus_bytes=bus_bytes)["bytes"]


def offchip_bytes(W, *, weights, wbits=None, lanes, simd, bus_bytes) -> int:
    """Bytes the stage reads from off-chip memory a frame: every group once, whole beats."""
    return sum(group_bytes(W, weights=weights, wbits=wbits, lanes=lanes, simd=simd,
                           bus_bytes=bus_bytes))


def words_to_bytes(words, word_bits: int, nbytes: int) -> bytes:
    """A group's words as its memory image: one LSB-first bit stream, ``nbytes`` long."""
    stream = sparse_format.words_to_bits(words, word_bits)
    data = np.packbits(stream, bitorder="little").tobytes()
    if len(data) > nbytes:
        raise ValueError(f"nbytes: {len(words)} words of {word_bits} bits need {len(data)} "
                         f"bytes, got {nbytes}")
    return data + bytes(nbytes - len(data))


def bytes_to_words(data: bytes, word_bits: int) -> list[int]:
    """Every whole word in ``data`` (inverse of :func:`words_to_bytes`; the padding to
    whole bus beats comes back as trailing zero words)."""
    bits = np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8), bitorder="little")
    count = len(bits) // word_bits
    return sparse_format.bits_to_words(bits[:count * word_bits], word_bits) if count else []


def _fold(item):
    """``(name, W, weights, wbits, lanes, simd)`` of one ``layout`` entry."""
    layer, lanes, simd = item
    if isinstance(layer, dict):
        name, W, weights, wbits = layer["name"], layer["W"], layer["weights"], layer.get("wbits")
    else:
        name, W, weights, wbits = layer.name, layer.W, layer.weights, getattr(layer, "wbits", None)
    if W is None:
        raise ValueError(f"layers: layer {name!r} has no weights")
    weights, wbits = _mode(weights, wbits)
    return name, W, weights, wbits, lanes, simd


def layout(layers, *, base: int = 0, bus_bytes: int = 8):
    """``(weights.bin bytes, memory_map dict)`` for the frame-based layers.

    ``layers``: ``[(layer, lanes, simd), ...]`` in address order, ``layer`` a
    ``quant.reference.IntLayer`` (``name``, ``W``, ``weights`` as a plan mode word) or a
    dict with ``name``, ``W``, ``weights`` (and ``wbits`` for ``"int"``).  ``base``: the
    address weights.bin is loaded at, a multiple of 64.  Deterministic: the same layers
    give the same bytes.
    """
    _check_bus(bus_bytes)
    if isinstance(base, bool) or not isinstance(base, int) or base < 0 or base % ALIGN:
        raise ValueError(f"base: must be a non-negative multiple of {ALIGN}, got {base!r}")
    image = bytearray()
    entries = {}
    for item in layers:
        name, W, weights, wbits, lanes, simd = _fold(item)
        if name in entries:
            raise ValueError(f"layers: layer {name!r} appears twice")
        image += bytes(_ceil(len(image), ALIGN) * ALIGN - len(image))
        images = group_images(W, weights=weights, wbits=wbits, lanes=lanes, simd=simd)
        sizes = [beat_bytes(group.bits, bus_bytes) for group in images]
        groups = [[len(image) + o, n] for o, n in zip(aligned_offsets(sizes), sizes)]
        for group, (at, size) in zip(images, groups):
            image += bytes(at - len(image)) + words_to_bytes(group.words, group.word_bits, size)
        start = groups[0][0]
        entries[name] = {"offset": start, "bytes": len(image) - start, "groups": groups}
    if base + len(image) > ADDRESS_LIMIT:
        raise ValueError(f"base: the image ends at {base + len(image):#x}, beyond the 32-bit "
                         f"address space")
    return bytes(image), {"base": base, "bus_bytes": bus_bytes, "layers": entries}


def read_words(data: bytes, memory_map: dict, layer: str, group: int, word_bits: int) -> list[int]:
    """Group ``group`` of ``layer`` as words of ``word_bits`` (the stage's decoder width,
    ``group_images(...)[g].word_bits``), from weights.bin's bytes and its map: the group's
    ``depth`` words followed by the zero words of its padding to whole bus beats."""
    try:
        offset, size = memory_map["layers"][layer]["groups"][group]
    except (KeyError, IndexError):
        raise ValueError(f"layer: no group {group} of {layer!r} in the memory map") from None
    if offset + size > len(data):
        raise ValueError(f"data: {len(data)} bytes end before group {group} of {layer!r} "
                         f"({offset}+{size})")
    return bytes_to_words(data[offset:offset + size], word_bits)
