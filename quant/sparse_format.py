"""The compressed weight formats ``cnn_ip.sparse/1`` (read by ``blocks.sparse_decoder``) and
``cnn_ip.sparse/2`` (spec of both: docs/sparse_format.md).

A layer's weight matrix ``W`` (shape ``(Cout, R)``, weight *values*) is cut into dense
beats in the order the MAC array consumes them: for each output-channel group ``g`` and
each reduction step ``r``, the beat holds ``P = lanes * simd`` elements, element
``p = l*simd + s`` being ``W[g*lanes + l, r*simd + s]``.  Each beat is then coded one of
three ways, the same for the whole layer (``coding`` in the sidecar):

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
``block``   (format ``cnn_ip.sparse/2``, the ``/1`` codings above keep format ``/1``) a
            two-level mask: ``P/B`` bits, one per aligned block of ``B`` elements of the
            beat (``B`` a power of two dividing ``P``, per layer), then for the blocks with
            a non-zero either their ``B``-bit element masks followed by the non-zero
            elements' ``VB``-bit values and zeros up to an even length (``inner="mask"``,
            ``RECORD_ALIGN``), or their ``B`` codes of ``WB`` bits (``inner="dense"``).
            Same beat order, same stream-to-words rule.

``encode`` picks the smallest of the codings in ``codes`` unless told (``coding=``); the
default ``codes`` are all three, which the hardware decoder reads.
:func:`pattern_bits` gives every candidate's exact ROM bits from the zero pattern alone.
``decode`` is the pure-numpy inverse (both formats) and the decoder block's golden model.
``write_weights`` writes ``STEM.hex`` and ``STEM.json`` with :func:`quant.rom_image.write_rom`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from quant.rom_image import write_rom
from quant.weight_modes import (bad_values, check as check_mode, code_bits, describe_values,
                                from_codes, normal_wbits, to_codes, value_bits)

FORMAT = "cnn_ip.sparse/1"
FORMAT2 = "cnn_ip.sparse/2"
CODINGS = ("auto", "dense", "masked", "block")
CODES = ("dense", "masked", "block")     # what ``coding="auto"`` may choose from
HARDWARE_CODES = CODES                   # the default: what blocks.sparse_decoder reads
FIRST_CODES = ("dense", "masked")        # cnn_ip.sparse/1 (off-chip group images use it)
INNERS = ("mask", "dense")               # a non-zero block of the block coding
# A record with element masks is zero-padded to a multiple of RECORD_ALIGN bits, so that
# records start at even bits: the decoder's record table then has half the starts
RECORD_ALIGN = 2


def record_align(coding: str, inner=None) -> int:
    """Bits a record of the coding is padded to a multiple of (``RECORD_ALIGN`` for the
    block coding with element masks, else 1: no padding)."""
    return RECORD_ALIGN if coding == "block" and inner == "mask" else 1


def padded(bits, align: int):
    """``bits`` rounded up to a multiple of ``align``."""
    return -(-bits // align) * align


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

def check_fold(lanes, simd) -> None:
    """ValueError unless ``lanes`` and ``simd`` are positive integers."""
    for pname, value in (("lanes", lanes), ("simd", simd)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{pname}: must be a positive integer, got {value!r}")


def check_matrix(W, *, weights, wbits=None, lanes, simd) -> np.ndarray:
    """Return ``W`` as an int64 ``(Cout, R)`` array or raise ``ValueError`` saying why not.

    Floating-point arrays are accepted when every entry is a whole number (a quantizer's
    output often is float); anything else must have an integer dtype.
    """
    check_mode(weights, wbits)
    check_fold(lanes, simd)
    W = np.asarray(W)
    if W.dtype == object or not (np.issubdtype(W.dtype, np.integer) or W.dtype == bool):
        if not (np.issubdtype(W.dtype, np.floating) and W.size and np.all(np.isfinite(W))
                and np.all(W == np.round(W))):
            raise ValueError(f"weights_file: must hold integers, got dtype {W.dtype}")
    if W.ndim != 2 or 0 in W.shape:
        raise ValueError(f"weights_file: must be a 2-D (Cout, R) array, got shape {W.shape}")
    if np.issubdtype(W.dtype, np.unsignedinteger) and W.max() > np.iinfo(np.int64).max:
        # beyond int64 a cast wraps round: say the value the file holds
        row, col = (int(i) for i in np.unravel_index(np.argmax(W), W.shape))
        raise ValueError(f"weights_file: {weights} weights must be "
                         f"{describe_values(weights, wbits)}; found {W[row, col]} at "
                         f"[{row}, {col}]")
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


def block_sizes(P: int) -> list[int]:
    """The block sizes the block coding allows for a beat of ``P`` elements: the powers of
    two dividing ``P``, ascending."""
    return [1 << k for k in range(P.bit_length()) if P % (1 << k) == 0]


def pattern_beat_bits(nonzero, *, weights, wbits=None, coding: str, block=None,
                      inner=None) -> np.ndarray:
    """Bits each beat takes in ``coding``, from the beats' zero pattern alone (``nonzero``:
    ``(beats, P)`` booleans): a record's length never depends on the non-zero values."""
    nonzero = np.asarray(nonzero, dtype=bool)
    P = nonzero.shape[1]
    if coding == "dense":
        return np.full(len(nonzero), P * code_bits(weights, wbits), dtype=np.int64)
    count = np.count_nonzero(nonzero, axis=1).astype(np.int64)
    if coding == "masked":
        return P + count * value_bits(weights, wbits)
    blocks = np.count_nonzero(nonzero.reshape(len(nonzero), P // block, block).any(axis=2),
                              axis=1).astype(np.int64)
    if inner == "mask":
        return padded(P // block + blocks * block + count * value_bits(weights, wbits),
                      record_align(coding, inner))
    return P // block + blocks * block * code_bits(weights, wbits)


def beat_bits(beats, *, weights, wbits=None, coding: str, block=None, inner=None) -> np.ndarray:
    """Bits each beat takes in ``coding``."""
    beats = np.asarray(beats)
    return pattern_beat_bits(beats != 0, weights=weights, wbits=wbits, coding=coding,
                             block=block, inner=inner)


def candidates(P: int, *, weights, codes=HARDWARE_CODES, block=None, inner=None) -> list[dict]:
    """The codings ``codes`` allows for a beat of ``P`` elements, in order of preference on
    a tie (simpler decoding first: ``/1`` before ``/2``; larger blocks, whose block mask
    and placement logic are smaller; element masks before dense blocks):
    ``{"coding", "block", "inner"}`` each."""
    found = []
    for coding in CODES:
        if coding not in codes or (coding != "dense" and weights == "binary"):
            continue
        if coding != "block":
            found.append({"coding": coding, "block": None, "inner": None})
            continue
        for size in ([block] if block else block_sizes(P)[::-1]):
            for kind in ([inner] if inner else INNERS):
                found.append({"coding": "block", "block": size, "inner": kind})
    return found


def pattern_bits(nonzero, *, weights, wbits=None, codes=HARDWARE_CODES, block=None,
                 inner=None) -> list[dict]:
    """Every candidate coding of a layer whose beats have the zero pattern ``nonzero``
    (``(beats, P)`` booleans, :func:`to_beats` order) with its exact ROM size: each item
    is a :func:`candidates` dict plus ``word_bits`` (the longest record), ``stream_bits``,
    ``depth`` and ``bits`` (``depth * word_bits``, what :func:`encode` would write)."""
    nonzero = np.asarray(nonzero, dtype=bool)
    sized = []
    for cand in candidates(nonzero.shape[1], weights=weights, codes=codes, block=block,
                           inner=inner):
        bits = pattern_beat_bits(nonzero, weights=weights, wbits=wbits, **cand)
        word, total = int(bits.max()), int(bits.sum())
        depth = -(-total // word)
        sized.append({**cand, "word_bits": word, "stream_bits": total, "depth": depth,
                      "bits": depth * word})
    return sized


def best_code(nonzero, *, weights, wbits=None, codes=HARDWARE_CODES, block=None,
              inner=None) -> dict:
    """The :func:`pattern_bits` item with the fewest bits (the first of them on a tie)."""
    sized = pattern_bits(nonzero, weights=weights, wbits=wbits, codes=codes, block=block,
                         inner=inner)
    return min(sized, key=lambda item: item["bits"])


def choose_coding(beats, *, weights, wbits=None) -> str:
    """The ``/1`` coding with fewer ROM bits (dense on a tie: it needs no decoding logic)."""
    return best_code(np.asarray(beats) != 0, weights=weights, wbits=wbits,
                     codes=FIRST_CODES)["coding"]


def layer_bits(W, *, weights, wbits=None, lanes, simd, codes=HARDWARE_CODES, block=None,
               inner=None) -> dict:
    """The coding :func:`encode` would choose for ``W`` among ``codes`` and its exact ROM
    size (a :func:`pattern_bits` item), without building the words."""
    W = check_matrix(W, weights=weights, wbits=wbits, lanes=lanes, simd=simd)
    return best_code(to_beats(W, lanes, simd) != 0, weights=weights,
                     wbits=normal_wbits(weights, wbits), codes=codes, block=block, inner=inner)


# --- bit streams --------------------------------------------------------------------------

def _field_bits(values, bits: int) -> np.ndarray:
    """``values`` as ``bits``-bit little-endian fields, concatenated: one uint8 per bit."""
    values = np.asarray(values, dtype=np.int64).reshape(-1, 1)
    return ((values >> np.arange(bits)) & 1).astype(np.uint8).ravel()


def _field_values(bit_array, bits: int) -> np.ndarray:
    """Inverse of :func:`_field_bits`."""
    fields = np.asarray(bit_array, dtype=np.int64).reshape(-1, bits)
    return fields @ (np.int64(1) << np.arange(bits, dtype=np.int64))


def _stored(nonzero_values, weights, wbits) -> np.ndarray:
    """What a mask-selected value stores: ternary its sign (1 = -1), int its code."""
    if weights == "ternary":
        return (np.asarray(nonzero_values) < 0).astype(np.int64)
    return to_codes(nonzero_values, weights, wbits)


def _unstored(stored, weights, wbits) -> np.ndarray:
    """Inverse of :func:`_stored`."""
    return (1 - 2 * stored) if weights == "ternary" else from_codes(stored, weights, wbits)


def beat_stream(beat, *, weights, wbits=None, coding: str, block=None,
                inner=None) -> np.ndarray:
    """The bits of one beat (values, length ``P``) in stream order, one uint8 per bit."""
    beat = np.asarray(beat, dtype=np.int64)
    if coding == "dense":
        return _field_bits(to_codes(beat, weights, wbits), code_bits(weights, wbits))
    values = _field_bits(_stored(beat[beat != 0], weights, wbits), value_bits(weights, wbits))
    if coding == "masked":
        return np.concatenate([(beat != 0).astype(np.uint8), values])
    rows = beat.reshape(-1, block)
    used = (rows != 0).any(axis=1)
    if inner == "mask":
        record = [used.astype(np.uint8), (rows[used] != 0).astype(np.uint8).ravel(), values]
        length = sum(len(part) for part in record)
        pad = padded(length, record_align(coding, inner)) - length
        return np.concatenate(record + [np.zeros(pad, dtype=np.uint8)])
    return np.concatenate([used.astype(np.uint8),
                           _field_bits(to_codes(rows[used].ravel(), weights, wbits),
                                       code_bits(weights, wbits))])


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


def _check_choice(P, *, weights, coding, codes, block, inner) -> None:
    if coding not in CODINGS:
        raise ValueError(f"coding: must be one of {', '.join(CODINGS)}, got {coding!r}")
    if weights == "binary" and coding in ("masked", "block"):
        raise ValueError(f"coding: binary weights have no zeros; only the dense coding applies")
    if isinstance(codes, str) or not codes or any(c not in CODES for c in codes):
        raise ValueError(f"codes: must be a non-empty tuple of {', '.join(CODES)}, got {codes!r}")
    blockwise = coding == "block" or (coding == "auto" and "block" in codes)
    if block is not None and (not blockwise or block not in block_sizes(P)):
        raise ValueError(f"block: must be a power of two dividing lanes*simd = {P} (block "
                         f"coding only), got {block!r}")
    if inner is not None and (not blockwise or inner not in INNERS):
        raise ValueError(f"inner: must be one of {', '.join(INNERS)} (block coding only), "
                         f"got {inner!r}")


def code_meta(choice: dict, *, weights, wbits, lanes: int, simd: int) -> dict:
    """The sidecar fields that follow from a layer's code (a :func:`candidates` dict) and
    packing alone: what the decoder is generated from (``encode`` writes them; the
    planner sizes a ROM with them without building its words)."""
    coding, inner = choice["coding"], choice["inner"]
    stores_values = coding == "masked" or inner == "mask"
    meta = {"coding": coding, "weights": weights, "wbits": wbits,
            "code_bits": code_bits(weights, wbits),
            "value_bits": value_bits(weights, wbits) if stores_values else None,
            "lanes": int(lanes), "simd": int(simd)}
    if coding == "block":
        meta.update({"block": choice["block"], "inner": inner,
                     "block_mask_bits": lanes * simd // choice["block"],
                     "record_align": record_align(coding, inner)})
    return meta


def encode(W, *, weights, wbits=None, lanes, simd, coding: str = "auto",
           codes=HARDWARE_CODES, block=None, inner=None) -> SparseImage:
    """Encode weight values ``W`` (``(Cout, R)``) into ROM words; see the module docstring.

    ``coding="auto"`` takes the smallest of ``codes`` (default ``HARDWARE_CODES``: the
    codings the decoder block reads, ``/2`` included); ``block`` and ``inner`` fix the
    block coding's choices (by default the smallest)."""
    W = check_matrix(W, weights=weights, wbits=wbits, lanes=lanes, simd=simd)
    _check_choice(lanes * simd, weights=weights, coding=coding, codes=codes, block=block,
                  inner=inner)
    wbits = normal_wbits(weights, wbits)
    beats = to_beats(W, lanes, simd)
    chosen = best_code(beats != 0, weights=weights, wbits=wbits,
                       codes=codes if coding == "auto" else (coding,), block=block, inner=inner)
    choice = {k: chosen[k] for k in ("coding", "block", "inner")}
    stream = np.concatenate([beat_stream(b, weights=weights, wbits=wbits, **choice)
                             for b in beats])
    word_bits = chosen["word_bits"]
    words = bits_to_words(stream, word_bits)
    depth = len(words)
    nonzeros = int(np.count_nonzero(W))
    coding, block = choice["coding"], choice["block"]
    meta = {
        "format": FORMAT2 if coding == "block" else FORMAT, "word_bits": word_bits,
        "depth": depth, "bits": depth * word_bits,
        **code_meta(choice, weights=weights, wbits=wbits, lanes=lanes, simd=simd),
        "cout": int(W.shape[0]), "reduce": int(W.shape[1]), "beats": len(beats),
        "stream_bits": len(stream), "pad_bits": depth * word_bits - len(stream),
        "nonzeros": nonzeros, "sparsity": round(1 - nonzeros / W.size, 6),
        "bits_per_weight": round(depth * word_bits / W.size, 6),
        "order": "g in Cout/lanes, r in R/simd: beat; element l*simd+s = W[g*lanes+l, r*simd+s]",
    }
    if coding == "block":
        meta.update({"nonzero_blocks": int((beats.reshape(-1, block) != 0).any(axis=1).sum()),
                     "order": meta["order"] + f"; block k of a beat = elements "
                                              f"[k*{block}, (k+1)*{block})"})
    assert len(stream) == chosen["stream_bits"] and depth == chosen["depth"]
    return SparseImage(words=words, word_bits=word_bits, meta=meta)


def _decode_beat(stream, pos, meta, P) -> tuple[np.ndarray, int]:
    """One beat's values from stream bit ``pos`` on, and the position after its record."""
    start = pos
    weights, wbits = meta["weights"], meta.get("wbits")
    wb, vb = meta["code_bits"], meta["value_bits"]
    coding, block = meta["coding"], meta.get("block")
    if coding == "dense":
        return from_codes(_field_values(stream[pos:pos + P * wb], wb), weights, wbits), pos + P * wb
    beat = np.zeros(P, dtype=np.int64)
    if coding == "masked":
        mask = stream[pos:pos + P].astype(bool)
        pos += P
    else:
        used = stream[pos:pos + P // block].astype(bool)
        pos += P // block
        n = int(used.sum())
        rows = np.zeros((P // block, block), dtype=np.int64)
        if meta["inner"] == "dense":
            rows[used] = from_codes(_field_values(stream[pos:pos + n * block * wb], wb),
                                    weights, wbits).reshape(n, block)
            return rows.ravel(), pos + n * block * wb
        rows[used] = stream[pos:pos + n * block].reshape(n, block)
        mask = rows.ravel().astype(bool)
        pos += n * block
    count = int(mask.sum())
    beat[mask] = _unstored(_field_values(stream[pos:pos + count * vb], vb), weights, wbits)
    end = start + padded(pos + count * vb - start, record_align(coding, meta.get("inner")))
    return beat, end


def _records(words, meta) -> tuple[list[int], np.ndarray, int]:
    """Walk an image's records: each beat's start (stream bit), its values, and the
    position after the last record."""
    P = meta["lanes"] * meta["simd"]
    stream = words_to_bits(words, meta["word_bits"])
    beats = np.zeros((meta["beats"], P), dtype=np.int64)
    starts, pos = [], 0
    for b in range(meta["beats"]):
        starts.append(pos)
        beats[b], pos = _decode_beat(stream, pos, meta, P)
    return starts, beats, pos


def record_starts(words, meta) -> list[int]:
    """The stream bit at which each beat's record starts."""
    return _records(words, meta)[0]


def decode(words, meta) -> np.ndarray:
    """ROM words + sidecar (``/1`` or ``/2``) -> the weight values ``W`` (``(Cout, R)``, int64)."""
    if meta.get("format") not in (FORMAT, FORMAT2):
        raise ValueError(f"decode: format must be {FORMAT} or {FORMAT2}, got {meta.get('format')!r}")
    if len(words) != meta["depth"]:
        raise ValueError(f"decode: {len(words)} words, the sidecar says {meta['depth']}")
    _, beats, pos = _records(words, meta)
    if pos != meta["stream_bits"]:
        raise ValueError(f"decode: stream is {pos} bits, the sidecar says {meta['stream_bits']}")
    return from_beats(beats, meta["lanes"], meta["simd"], meta["cout"], meta["reduce"])


def beat_codes(W, *, weights, wbits=None, lanes, simd) -> list[int]:
    """The dense beats of ``W`` as packed ``mac_array`` words: one decoder pass."""
    wb = code_bits(weights, wbits)
    codes = to_codes(to_beats(np.asarray(W), lanes, simd), weights, wbits)
    return [int.from_bytes(np.packbits(_field_bits(row, wb), bitorder="little").tobytes(), "little")
            for row in codes]


def write_weights(out_dir, stem: str, W, *, weights, wbits=None, lanes, simd,
                  coding: str = "auto", codes=HARDWARE_CODES, block=None, inner=None) -> dict:
    """Encode ``W`` and write ``STEM.hex`` + ``STEM.json``; return the sidecar (has ``bits``;
    ``format`` says which code was written)."""
    image = encode(W, weights=weights, wbits=wbits, lanes=lanes, simd=simd, coding=coding,
                   codes=codes, block=block, inner=inner)
    meta = {k: v for k, v in image.meta.items() if k not in ("format", "word_bits", "depth", "bits")}
    return write_rom(out_dir, stem, image.words, image.word_bits, format=image.meta["format"],
                     **meta)
