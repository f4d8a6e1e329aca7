"""The compressed weight format read by ``blocks.sparse_decoder`` (spec: docs/sparse_format.md).

A layer's weight matrix ``W`` (shape ``(Cout, R)``, weight *values*) is cut into dense
beats in the order the MAC array consumes them: for each output-channel group ``g`` and
each reduction step ``r``, the beat holds ``P = lanes * simd`` elements, element
``p = l*simd + s`` being ``W[g*lanes + l, r*simd + s]``.  Each beat is then coded one of
two ways, the same for the whole layer (``coding`` in the sidecar):

``dense``   the beat's weight codes as ``mac_array`` takes them (``P * WB`` bits, element
            ``p`` at bits ``p*WB``); one ROM word a beat.  Binary is always dense: its
            weights are never zero, so there is nothing to skip.
``masked``  a ``P``-bit mask (bit ``p`` set where element ``p`` is not zero), then, for
            each set bit in increasing ``p``, the element's value in ``VB`` bits (ternary:
            one sign bit, 1 = -1; int: the ``wbits`` two's complement code).  The beats
            are concatenated into one bit stream (least significant bit first) and cut
            into ROM words of ``word_bits`` = the longest beat of the layer, so that one
            ROM word a cycle always feeds one beat a cycle; the last word is padded with
            zeros.

``encode`` picks the coding with fewer bits unless told (``coding="dense"|"masked"``).
``decode`` is the pure-numpy inverse and the decoder block's golden model.
``write_weights`` writes ``STEM.hex`` and ``STEM.json`` with :func:`quant.rom_image.write_rom`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from quant.rom_image import write_rom
from quant.weight_modes import (bad_values, check as check_mode, code_bits, describe_values,
                                from_codes, normal_wbits, to_codes, value_bits)

FORMAT = "cnn_ip.sparse/1"
CODINGS = ("auto", "dense", "masked")


@dataclass
class SparseImage:
    """An encoded layer: ROM ``words`` of ``word_bits`` bits and the sidecar fields ``meta``."""

    words: list
    word_bits: int
    meta: dict = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return len(self.words)

    @property
    def bits(self) -> int:
        """Exact ROM bits (padding included): what the block RAM holds."""
        return self.depth * self.word_bits


# --- checking -----------------------------------------------------------------------------

def check_matrix(W, *, weights, wbits=None, lanes, simd) -> np.ndarray:
    """Return ``W`` as an int64 ``(Cout, R)`` array or raise ``ValueError`` saying why not.

    Floating-point arrays are accepted when every entry is a whole number (a quantizer's
    output often is float); anything else must have an integer dtype.
    """
    check_mode(weights, wbits)
    for pname, value in (("lanes", lanes), ("simd", simd)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{pname}: must be a positive integer, got {value!r}")
    W = np.asarray(W)
    if W.dtype == object or not (np.issubdtype(W.dtype, np.integer) or W.dtype == bool):
        if not (np.issubdtype(W.dtype, np.floating) and W.size and np.all(np.isfinite(W))
                and np.all(W == np.round(W))):
            raise ValueError(f"weights_file: must hold integers, got dtype {W.dtype}")
    if W.ndim != 2 or 0 in W.shape:
        raise ValueError(f"weights_file: must be a 2-D (Cout, R) array, got shape {W.shape}")
    W = W.astype(np.int64)
    cout, reduce = W.shape
    if cout % lanes:
        raise ValueError(f"weights_file: Cout = {cout} rows is not a multiple of lanes = {lanes}")
    if reduce % simd:
        raise ValueError(f"weights_file: R = {reduce} columns is not a multiple of simd = {simd}")
    bad = bad_values(W, weights, wbits)
    if np.any(bad):
        row, col = (int(i) for i in np.argwhere(bad)[0])
        allowed = describe_values(weights, wbits)
        raise ValueError(f"weights_file: {weights} weights must be {allowed}; "
                         f"found {W[row, col]} at [{row}, {col}]")
    return W


# --- beats --------------------------------------------------------------------------------

def to_beats(W, lanes: int, simd: int) -> np.ndarray:
    """``(beats, P)``: the dense beats in MAC order, element ``p = l*simd + s``."""
    cout, reduce = W.shape
    groups, steps = cout // lanes, reduce // simd
    # W[g*L + l, r*S + s] -> [g, r, l, s]
    return (np.asarray(W).reshape(groups, lanes, steps, simd)
            .transpose(0, 2, 1, 3).reshape(groups * steps, lanes * simd))


def from_beats(beats, lanes: int, simd: int, cout: int, reduce: int) -> np.ndarray:
    groups, steps = cout // lanes, reduce // simd
    return (np.asarray(beats).reshape(groups, steps, lanes, simd)
            .transpose(0, 2, 1, 3).reshape(cout, reduce))


def beat_bits(beats, *, weights, wbits=None, coding: str) -> np.ndarray:
    """Bits each beat takes in ``coding``."""
    beats = np.asarray(beats)
    P = beats.shape[1]
    if coding == "dense":
        return np.full(len(beats), P * code_bits(weights, wbits), dtype=np.int64)
    return P + np.count_nonzero(beats, axis=1) * value_bits(weights, wbits)


def choose_coding(beats, *, weights, wbits=None) -> str:
    """The coding with fewer ROM bits (dense on a tie: it needs no decoding logic)."""
    if weights == "binary":
        return "dense"
    sizes = {}
    for coding in ("dense", "masked"):
        bits = beat_bits(beats, weights=weights, wbits=wbits, coding=coding)
        word = int(bits.max())
        sizes[coding] = -(-int(bits.sum()) // word) * word
    return "dense" if sizes["dense"] <= sizes["masked"] else "masked"


# --- bit streams --------------------------------------------------------------------------

def _field_bits(values, bits: int) -> np.ndarray:
    """``values`` as ``bits``-bit little-endian fields, concatenated: one uint8 per bit."""
    values = np.asarray(values, dtype=np.int64).reshape(-1, 1)
    return ((values >> np.arange(bits)) & 1).astype(np.uint8).ravel()


def _field_values(bit_array, bits: int) -> np.ndarray:
    """Inverse of :func:`_field_bits`."""
    fields = np.asarray(bit_array, dtype=np.int64).reshape(-1, bits)
    return fields @ (np.int64(1) << np.arange(bits, dtype=np.int64))


def beat_stream(beat, *, weights, wbits=None, coding: str) -> np.ndarray:
    """The bits of one beat (values, length ``P``) in stream order, one uint8 per bit."""
    beat = np.asarray(beat, dtype=np.int64)
    if coding == "dense":
        return _field_bits(to_codes(beat, weights, wbits), code_bits(weights, wbits))
    nonzero = beat[beat != 0]
    if weights == "ternary":
        stored = (nonzero < 0).astype(np.int64)  # the sign bit: 1 = -1
    else:
        stored = to_codes(nonzero, weights, wbits)
    return np.concatenate([(beat != 0).astype(np.uint8),
                           _field_bits(stored, value_bits(weights, wbits))])


def bits_to_words(bit_array, word_bits: int) -> list[int]:
    """Cut a bit stream into ``word_bits``-bit words (bit 0 of the stream = bit 0 of word 0)."""
    depth = -(-len(bit_array) // word_bits)
    padded = np.zeros(depth * word_bits, dtype=np.uint8)
    padded[:len(bit_array)] = bit_array
    return [int.from_bytes(np.packbits(row, bitorder="little").tobytes(), "little")
            for row in padded.reshape(depth, word_bits)]


def words_to_bits(words, word_bits: int) -> np.ndarray:
    nbytes = (word_bits + 7) // 8
    rows = [np.unpackbits(np.frombuffer(int(w).to_bytes(nbytes, "little"), dtype=np.uint8),
                          bitorder="little")[:word_bits] for w in words]
    return np.concatenate(rows) if rows else np.zeros(0, dtype=np.uint8)


def encode(W, *, weights, wbits=None, lanes, simd, coding: str = "auto") -> SparseImage:
    """Encode weight values ``W`` (``(Cout, R)``) into ROM words; see the module docstring."""
    W = check_matrix(W, weights=weights, wbits=wbits, lanes=lanes, simd=simd)
    if coding not in CODINGS:
        raise ValueError(f"coding: must be one of {', '.join(CODINGS)}, got {coding!r}")
    if weights == "binary" and coding == "masked":
        raise ValueError("coding: binary weights have no zeros; only the dense coding applies")
    wbits = normal_wbits(weights, wbits)
    beats = to_beats(W, lanes, simd)
    if coding == "auto":
        coding = choose_coding(beats, weights=weights, wbits=wbits)
    stream = np.concatenate([beat_stream(b, weights=weights, wbits=wbits, coding=coding)
                             for b in beats])
    word_bits = int(beat_bits(beats, weights=weights, wbits=wbits, coding=coding).max())
    words = bits_to_words(stream, word_bits)
    depth = len(words)
    nonzeros = int(np.count_nonzero(W))
    meta = {
        "format": FORMAT, "word_bits": word_bits, "depth": depth, "bits": depth * word_bits,
        "coding": coding, "weights": weights, "wbits": wbits,
        "code_bits": code_bits(weights, wbits),
        "value_bits": value_bits(weights, wbits) if coding == "masked" else None,
        "lanes": int(lanes), "simd": int(simd), "cout": int(W.shape[0]),
        "reduce": int(W.shape[1]), "beats": len(beats),
        "stream_bits": len(stream), "pad_bits": depth * word_bits - len(stream),
        "nonzeros": nonzeros, "sparsity": round(1 - nonzeros / W.size, 6),
        "bits_per_weight": round(depth * word_bits / W.size, 6),
        "order": "g in Cout/lanes, r in R/simd: beat; element l*simd+s = W[g*lanes+l, r*simd+s]",
    }
    return SparseImage(words=words, word_bits=word_bits, meta=meta)


def decode(words, meta) -> np.ndarray:
    """ROM words + sidecar -> the weight values ``W`` (``(Cout, R)``, int64)."""
    weights, wbits = meta["weights"], meta.get("wbits")
    lanes, simd = meta["lanes"], meta["simd"]
    P = lanes * simd
    if len(words) != meta["depth"]:
        raise ValueError(f"decode: {len(words)} words, the sidecar says {meta['depth']}")
    stream = words_to_bits(words, meta["word_bits"])
    beats = np.zeros((meta["beats"], P), dtype=np.int64)
    pos = 0
    for b in range(meta["beats"]):
        if meta["coding"] == "dense":
            wb = meta["code_bits"]
            beats[b] = from_codes(_field_values(stream[pos:pos + P * wb], wb), weights, wbits)
            pos += P * wb
            continue
        mask = stream[pos:pos + P].astype(bool)
        pos += P
        vb = meta["value_bits"]
        count = int(mask.sum())
        stored = _field_values(stream[pos:pos + count * vb], vb)
        pos += count * vb
        beats[b, mask] = (1 - 2 * stored) if weights == "ternary" else \
            from_codes(stored, weights, wbits)
    if pos != meta["stream_bits"]:
        raise ValueError(f"decode: stream is {pos} bits, the sidecar says {meta['stream_bits']}")
    return from_beats(beats, lanes, simd, meta["cout"], meta["reduce"])


def beat_codes(W, *, weights, wbits=None, lanes, simd) -> list[int]:
    """The dense beats of ``W`` as packed ``mac_array`` words: one decoder pass."""
    wb = code_bits(weights, wbits)
    codes = to_codes(to_beats(np.asarray(W), lanes, simd), weights, wbits)
    return [int.from_bytes(np.packbits(_field_bits(row, wb), bitorder="little").tobytes(), "little")
            for row in codes]


def write_weights(out_dir, stem: str, W, *, weights, wbits=None, lanes, simd,
                  coding: str = "auto") -> dict:
    """Encode ``W`` and write ``STEM.hex`` + ``STEM.json``; return the sidecar (has ``bits``)."""
    image = encode(W, weights=weights, wbits=wbits, lanes=lanes, simd=simd, coding=coding)
    meta = {k: v for k, v in image.meta.items() if k not in ("format", "word_bits", "depth", "bits")}
    return write_rom(out_dir, stem, image.words, image.word_bits, format=FORMAT, **meta)
