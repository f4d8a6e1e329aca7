import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant.rom_image import model_bits, read_rom
from quant.sparse_format import (CODES, FIRST_CODES, FORMAT, FORMAT2, HARDWARE_CODES,
                                 block_sizes, decode,
                                 encode, layer_bits, pattern_bits, to_beats, write_weights)

MODES = [("binary", None), ("ternary", None), ("int", 2), ("int", 4), ("int", 8)]


def random_matrix(rng, shape, weights, wbits, sparsity):
    if weights == "binary":
        return rng.choice([-1, 1], size=shape)
    lo, hi = (-1, 1) if weights == "ternary" else (-(1 << (wbits - 1)), (1 << (wbits - 1)) - 1)
    nonzero = np.array([v for v in range(lo, hi + 1) if v != 0])
    W = rng.choice(nonzero, size=shape)
    W[rng.random(shape) < sparsity] = 0
    return W


def masked_stream_bits(W, lanes, simd, value_bits):
    """Bits of the masked coding counted from the definition: P mask bits + VB per non-zero."""
    P = lanes * simd
    beats = (W.shape[0] // lanes) * (W.shape[1] // simd)
    return beats * P + np.count_nonzero(W) * value_bits


@settings(max_examples=60, deadline=None)
@given(mode=st.sampled_from(MODES), lanes=st.integers(1, 6), simd=st.integers(1, 6),
       groups=st.integers(1, 3), steps=st.integers(1, 4),
       sparsity=st.sampled_from([0.0, 0.3, 0.5, 0.75, 0.9, 1.0]),
       coding=st.sampled_from(["auto", "dense", "masked"]), seed=st.integers(0, 2**32 - 1))
def test_write_read_decode_round_trip(tmp_path_factory, mode, lanes, simd, groups, steps,
                                      sparsity, coding, seed):
    weights, wbits = mode
    if weights == "binary" and coding == "masked":
        coding = "dense"
    rng = np.random.default_rng(seed)
    W = random_matrix(rng, (groups * lanes, steps * simd), weights, wbits, sparsity)
    W[0] = 0 if weights != "binary" else W[0]      # an all-zero row
    W[-1] = W[-1] if weights == "binary" else rng.choice([-1, 1], size=W.shape[1])  # no zeros
    out = tmp_path_factory.mktemp("rom")
    info = write_weights(out, "layer", W, weights=weights, wbits=wbits, lanes=lanes,
                         simd=simd, coding=coding)
    words, meta = read_rom(out / "layer.json")
    assert np.array_equal(decode(words, meta), W)
    assert info["format"] == (FORMAT2 if info["coding"] == "block" else FORMAT)
    assert info["bits"] == len(words) * info["word_bits"]
    assert model_bits(out) == info["bits"]
    assert (info["cout"], info["reduce"], info["lanes"], info["simd"]) == (*W.shape, lanes, simd)
    code_bits = {"binary": 1, "ternary": 2}.get(weights, wbits)
    value_bits = 1 if weights == "ternary" else wbits
    if info["coding"] == "masked":
        assert info["stream_bits"] == masked_stream_bits(W, lanes, simd, value_bits)
    elif info["coding"] == "block":
        assert coding == "auto" and weights != "binary"
        assert info["stream_bits"] == block_stream_bits(W, lanes, simd, info["block"],
                                                        info["inner"], code_bits, value_bits)
    else:
        assert info["stream_bits"] == W.size * code_bits
    assert 0 <= info["pad_bits"] < info["word_bits"]
    assert info["stream_bits"] + info["pad_bits"] == info["bits"]


def test_ternary_bit_layout_by_hand():
    # one beat, elements +1 0 -1 0: mask 0b0101, then the signs of +1 (0) and -1 (1)
    image = encode(np.array([[1, 0, -1, 0]]), weights="ternary", lanes=1, simd=4,
                   coding="masked")
    assert image.words == [0b10_0101] and image.word_bits == 6


def test_int4_bit_layout_by_hand():
    # two beats of two elements: (3, 0) -> mask 01, value 0011; (0, -2) -> mask 10, 1110
    W = np.array([[3, 0, 0, -2]])
    image = encode(W, weights="int", wbits=4, lanes=1, simd=2, coding="masked")
    stream = 0b01 | 0b0011 << 2 | 0b10 << 6 | 0b1110 << 8
    assert image.word_bits == 6 and image.meta["pad_bits"] == 0
    assert image.words == [stream & 0x3f, stream >> 6]
    dense = encode(W, weights="int", wbits=4, lanes=1, simd=2, coding="dense")
    assert dense.words == [0x03, 0xe0]  # element 1 in the high nibble: mac_array packing


def test_beat_order_follows_lanes_then_simd():
    W = np.arange(1, 1 + 4 * 4).reshape(4, 4) % 7 - 3  # int3 values in -3..3
    image = encode(W, weights="int", wbits=3, lanes=2, simd=2, coding="dense")
    expected = []
    for g in range(2):
        for r in range(2):
            word = 0
            for l in range(2):
                for s in range(2):
                    word |= (int(W[g * 2 + l, r * 2 + s]) & 7) << (3 * (l * 2 + s))
            expected.append(word)
    assert image.words == expected


def test_binary_is_dense_one_bit_per_weight():
    W = np.array([[1, -1, -1, 1]] * 2)
    image = encode(W, weights="binary", lanes=2, simd=2)
    # beat 0 = lanes (W[0,0:2], W[1,0:2]) = (+1 -1 +1 -1) -> codes 1 0 1 0, element 0 lowest
    assert image.meta["coding"] == "dense" and image.bits == 8 and image.words == [0b0101, 0b1010]


@pytest.mark.parametrize("sparsity,limit", [(0.5, 1.55), (0.75, 1.3), (0.9, 1.15)])
def test_sparse_ternary_takes_clearly_fewer_than_two_bits(sparsity, limit):
    rng = np.random.default_rng(1)
    W = random_matrix(rng, (64, 576), "ternary", None, sparsity)
    image = encode(W, weights="ternary", lanes=4, simd=8, codes=FIRST_CODES)
    assert image.meta["coding"] == "masked"
    assert image.bits / W.size < limit


def test_auto_picks_dense_when_masks_do_not_pay():
    rng = np.random.default_rng(2)
    W = random_matrix(rng, (8, 32), "int", 4, 0.0)
    assert encode(W, weights="int", wbits=4, lanes=2, simd=8).meta["coding"] == "dense"


@pytest.mark.parametrize("W,kwargs,message", [
    (np.zeros((2, 2, 2), int), {}, r"^weights_file: must be a 2-D \(Cout, R\) array"),
    (np.zeros((3, 8), int), {}, r"^weights_file: Cout = 3 rows is not a multiple of lanes = 2"),
    (np.zeros((4, 6), int), {}, r"^weights_file: R = 6 columns is not a multiple of simd = 4"),
    (np.full((2, 4), 2), {}, r"^weights_file: ternary weights must be -1, 0 or \+1; found 2"),
    (np.full((2, 4), 0.5), {}, r"^weights_file: must hold integers"),
    (np.zeros((2, 4), int), {"weights": "binary"}, r"^weights_file: binary weights must be"),
    (np.full((2, 4), 8), {"weights": "int", "wbits": 4}, r"^weights_file: int weights must "
                                                          r"be integers in -8\.\.7; found 8"),
    (np.zeros((2, 4), int), {"weights": "int", "wbits": 9}, r"^wbits: must be an integer in 2\.\.8"),
    (np.zeros((2, 4), int), {"weights": "quaternary"}, r"^weights: must be one of"),
    (np.zeros((2, 4), int), {"lanes": 0}, r"^lanes: must be a positive integer"),
])
def test_bad_input_names_the_problem(tmp_path, W, kwargs, message):
    args = {"weights": "ternary", "lanes": 2, "simd": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        write_weights(tmp_path, "w", W, **args)
    assert list(tmp_path.iterdir()) == []


# --- cnn_ip.sparse/2: the block coding --------------------------------------------------


def block_stream_bits(W, lanes, simd, block, inner, code_bits, value_bits):
    """Bits of the block coding counted from the definition, beat by beat, element by
    element; a record with element masks padded to an even length."""
    total = 0
    for g in range(W.shape[0] // lanes):
        for r in range(W.shape[1] // simd):
            beat = [W[g * lanes + l, r * simd + s] for l in range(lanes) for s in range(simd)]
            record = len(beat) // block
            for k in range(0, len(beat), block):
                nonzero = [v for v in beat[k:k + block] if v != 0]
                if nonzero:
                    record += block + len(nonzero) * value_bits if inner == "mask" \
                        else block * code_bits
            total += record + (record % 2 if inner == "mask" else 0)
    return total


@settings(max_examples=60, deadline=None)
@given(mode=st.sampled_from(MODES[1:]), lanes=st.sampled_from([1, 2, 3, 4, 8]),
       simd=st.sampled_from([1, 2, 4, 6, 16]), groups=st.integers(1, 3), steps=st.integers(1, 3),
       sparsity=st.sampled_from([0.0, 0.5, 0.9, 0.97, 1.0]), block_exp=st.integers(0, 7),
       inner=st.sampled_from(["mask", "dense"]), seed=st.integers(0, 2**32 - 1))
def test_block_coding_round_trip(tmp_path_factory, mode, lanes, simd, groups, steps, sparsity,
                                 block_exp, inner, seed):
    weights, wbits = mode
    P = lanes * simd
    block = 1 << block_exp
    while P % block:
        block //= 2
    rng = np.random.default_rng(seed)
    W = random_matrix(rng, (groups * lanes, steps * simd), weights, wbits, sparsity)
    out = tmp_path_factory.mktemp("rom2")
    info = write_weights(out, "layer", W, weights=weights, wbits=wbits, lanes=lanes, simd=simd,
                         coding="block", block=block, inner=inner)
    words, meta = read_rom(out / "layer.json")
    assert np.array_equal(decode(words, meta), W)
    assert (info["format"], info["coding"], info["block"], info["inner"]) == \
        (FORMAT2, "block", block, inner)
    code_bits = 2 if weights == "ternary" else wbits
    value_bits = 1 if weights == "ternary" else wbits
    assert info["stream_bits"] == block_stream_bits(W, lanes, simd, block, inner, code_bits,
                                                    value_bits)
    assert 0 <= info["pad_bits"] < info["word_bits"]
    assert model_bits(out) == info["bits"] == len(words) * info["word_bits"]


def test_block_ternary_bit_layout_by_hand():
    # P = 8, B = 4.  Beat 0 (row 0): 0 0 0 0 | +1 0 -1 0 -> block mask 10, element mask
    # 0101 of block 1, signs 0 (+1) 1 (-1): 8 bits.  Beat 1 (row 1): all zero -> 00.
    W = np.array([[0, 0, 0, 0, 1, 0, -1, 0], [0] * 8])
    image = encode(W, weights="ternary", lanes=1, simd=8, coding="block", block=4, inner="mask")
    assert image.meta["format"] == FORMAT2 and image.word_bits == 8
    assert image.meta["stream_bits"] == 10 and image.meta["pad_bits"] == 6
    stream = 0b10 | 0b0101 << 2 | 0b1 << 7      # then beat 1's two zero bits
    assert image.words == [stream & 0xff, stream >> 8]
    assert image.meta["nonzero_blocks"] == 1 and image.meta["block_mask_bits"] == 2


def test_worked_example_of_the_spec():
    # docs/sparse_format.md, "Worked example": lanes 2, simd 4, B = 4
    W = np.array([[0, 0, 0, 0, 0, 1, 0, 0], [0, 0, -1, 0, 0, 0, 0, 0]])
    image = encode(W, weights="ternary", lanes=2, simd=4, codes=CODES)
    assert (image.meta["block"], image.meta["inner"]) == (4, "mask")
    assert image.words == [0x52, 0x09] and image.word_bits == 8 and image.bits == 16
    assert image.meta["record_align"] == 2 and image.meta["pad_bits"] == 0
    assert encode(W, weights="ternary", lanes=2, simd=4, codes=FIRST_CODES).bits == 18
    assert encode(W, weights="ternary", lanes=2, simd=4, coding="masked").bits == 18


def test_block_int4_dense_inner_by_hand():
    # P = 4, B = 2: (3, -2 | 0, 0) -> block mask 01, then codes 0011 1110 of block 0
    W = np.array([[3, -2, 0, 0]])
    image = encode(W, weights="int", wbits=4, lanes=1, simd=4, coding="block", block=2,
                   inner="dense")
    assert image.word_bits == 10 and image.words == [0b01 | 0b0011 << 2 | 0b1110 << 6]
    assert image.meta["value_bits"] is None


def test_block_size_equal_to_beat_skips_empty_beats():
    W = np.zeros((4, 16), dtype=int)
    W[1, 3] = -1
    image = encode(W, weights="ternary", lanes=2, simd=8, coding="block", block=16, inner="mask")
    # beats: (rows 0-1, cols 0-7) holds the -1; the other three are one 0 bit each; each
    # record padded to an even length
    assert image.meta["stream_bits"] == (1 + 16 + 1) + 3 * 2
    assert np.array_equal(decode(image.words, image.meta), W)


@pytest.mark.parametrize("mode", [("ternary", None), ("int", 2), ("int", 4)])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.97])
def test_auto_picks_the_smallest_code_and_says_which(mode, sparsity):
    weights, wbits = mode
    rng = np.random.default_rng(3)
    W = random_matrix(rng, (16, 64), weights, wbits, sparsity)
    chosen = encode(W, weights=weights, wbits=wbits, lanes=4, simd=8, codes=CODES)
    sizes = [encode(W, weights=weights, wbits=wbits, lanes=4, simd=8, coding=c).bits
             for c in ("dense", "masked")]
    sizes += [encode(W, weights=weights, wbits=wbits, lanes=4, simd=8, coding="block",
                     block=b, inner=i).bits for b in block_sizes(32) for i in ("mask", "dense")]
    assert chosen.bits == min(sizes)
    assert chosen.meta["format"] == (FORMAT2 if chosen.meta["coding"] == "block" else FORMAT)
    assert np.array_equal(decode(chosen.words, chosen.meta), W)
    # without an explicit codes= the writer takes every code the decoder reads: all
    default = encode(W, weights=weights, wbits=wbits, lanes=4, simd=8)
    assert default.meta == chosen.meta and default.words == chosen.words
    first = encode(W, weights=weights, wbits=wbits, lanes=4, simd=8, codes=FIRST_CODES)
    assert first.meta["format"] == FORMAT and first.bits == min(sizes[:2])


def test_pattern_bits_equal_what_encode_writes():
    rng = np.random.default_rng(4)
    W = random_matrix(rng, (8, 48), "int", 3, 0.8)
    items = pattern_bits(to_beats(W, 4, 8) != 0, weights="int", wbits=3, codes=CODES)
    assert len(items) == 2 + 2 * len(block_sizes(32))
    for item in items:
        image = encode(W, weights="int", wbits=3, lanes=4, simd=8, coding=item["coding"],
                       block=item["block"], inner=item["inner"])
        assert (image.bits, image.word_bits, image.depth, image.meta["stream_bits"]) == \
            (item["bits"], item["word_bits"], item["depth"], item["stream_bits"])
    assert layer_bits(W, weights="int", wbits=3, lanes=4, simd=8, codes=CODES)["bits"] == \
        min(item["bits"] for item in items)


@pytest.mark.parametrize("sparsity,limit", [(0.9, 0.75), (0.95, 0.55)])
def test_sparse_ternary_goes_well_below_one_bit(sparsity, limit):
    rng = np.random.default_rng(1)
    W = random_matrix(rng, (64, 576), "ternary", None, sparsity)
    image = encode(W, weights="ternary", lanes=8, simd=16, codes=CODES)
    assert image.meta["format"] == FORMAT2 and image.bits / W.size < limit


def test_binary_never_takes_the_block_coding():
    W = np.array([[1, -1, -1, 1]] * 2)
    assert encode(W, weights="binary", lanes=2, simd=2, codes=CODES).meta["coding"] == "dense"
    assert HARDWARE_CODES == CODES            # the decoder reads /2 too


@pytest.mark.parametrize("kwargs,message", [
    ({"coding": "block", "block": 3}, r"^block: must be a power of two dividing lanes\*simd = 8"),
    ({"coding": "block", "block": 16}, r"^block: must be a power of two dividing"),
    ({"coding": "masked", "block": 2}, r"^block: .*block coding only"),
    ({"block": 2, "codes": FIRST_CODES}, r"^block: .*block coding only"),
    ({"coding": "block", "inner": "sparse"}, r"^inner: must be one of mask, dense"),
    ({"codes": ("dense", "huffman")}, r"^codes: must be a non-empty tuple"),
    ({"codes": "block"}, r"^codes: must be a non-empty tuple"),
    ({"codes": ()}, r"^codes: must be a non-empty tuple"),
    ({"coding": "block", "weights": "binary"}, r"^coding: binary weights have no zeros"),
])
def test_block_coding_bad_input(tmp_path, kwargs, message):
    args = {"weights": "ternary", "lanes": 2, "simd": 4, **kwargs}
    W = np.ones((2, 4), dtype=int)
    with pytest.raises(ValueError, match=message):
        write_weights(tmp_path, "w", W, **args)
    assert list(tmp_path.iterdir()) == []


def test_decode_refuses_an_unknown_format():
    image = encode(np.array([[1, 0]]), weights="ternary", lanes=1, simd=2)
    with pytest.raises(ValueError, match=r"^decode: format must be"):
        decode(image.words, {**image.meta, "format": "cnn_ip.sparse/9"})
