import hashlib
import json

import numpy as np
import pytest

from quant import offchip, sparse_format
from quant.reference import IntLayer


def matrix(rng, cout, reduce, weights, wbits=None, zeros=0.5):
    """Random weight values of the mode, with about ``zeros`` of them zero (not binary)."""
    if weights == "binary":
        return rng.choice([-1, 1], size=(cout, reduce))
    if weights == "ternary":
        W = rng.choice([-1, 1], size=(cout, reduce))
    else:
        W = rng.integers(-(1 << (wbits - 1)), 1 << (wbits - 1), size=(cout, reduce))
    W[rng.random((cout, reduce)) < zeros] = 0
    return W


def layers(seed=1):
    """Three frame layers: binary (dense), ternary (masked), int4 with a few very dense
    groups (groups of different lengths); as IntLayers and as a dict."""
    rng = np.random.default_rng(seed)
    t = matrix(rng, 16, 72, "ternary", zeros=0.7)
    i4 = matrix(rng, 12, 36, "int", 4, zeros=0.8)
    i4[:3] = rng.integers(1, 8, size=(3, 36))            # group 0 has no zeros
    return [
        (IntLayer(type="conv", name="c4", in_shape=(8, 3, 3), out_shape=(32, 3, 3), k=3,
                  weights="binary", W=matrix(rng, 32, 72, "binary")), 8, 8),
        (IntLayer(type="conv", name="c5", in_shape=(8, 3, 3), out_shape=(16, 3, 3), k=3,
                  weights="ternary", W=t), 4, 8),
        ({"name": "c6", "W": i4, "weights": "int", "wbits": 4}, 3, 4),
    ]


def weight_of(item):
    layer = item[0]
    return layer["W"] if isinstance(layer, dict) else layer.W


@pytest.mark.parametrize("bus_bytes", [4, 8, 16])
def test_round_trip_gives_every_group_back(bus_bytes):
    items = layers()
    data, mmap = offchip.layout(items, base=0x4000_0000, bus_bytes=bus_bytes)
    assert mmap["base"] == 0x4000_0000 and mmap["bus_bytes"] == bus_bytes
    assert list(mmap["layers"]) == ["c4", "c5", "c6"]
    for item, name in zip(items, ["c4", "c5", "c6"]):
        W, lanes = weight_of(item), item[1]
        images = offchip.group_images(W, **_mode(item), lanes=lanes, simd=item[2])
        groups = mmap["layers"][name]["groups"]
        assert len(groups) == len(images) == W.shape[0] // lanes
        rows = []
        for g, image in enumerate(images):
            words = offchip.read_words(data, mmap, name, g, image.word_bits)
            depth = image.meta["depth"]
            assert words[:depth] == image.words
            assert not any(words[depth:])                # padding to whole beats: zeros
            assert len(words) - depth < 8 * bus_bytes // image.word_bits + 1
            rows.append(sparse_format.decode(words[:depth], image.meta))
        # the layer's weight matrix, group after group, from the bytes alone
        assert np.array_equal(np.concatenate(rows), W)


def _mode(item):
    layer = item[0]
    if isinstance(layer, dict):
        return {"weights": layer["weights"], "wbits": layer["wbits"]}
    return {"weights": layer.weights}


def test_groups_are_64_byte_aligned_whole_beats_in_order_without_overlap():
    data, mmap = offchip.layout(layers(), base=128, bus_bytes=16)
    end = 0
    for name, entry in mmap["layers"].items():
        groups = entry["groups"]
        assert entry["offset"] == groups[0][0]
        assert entry["bytes"] == groups[-1][0] + groups[-1][1] - entry["offset"]
        for offset, size in groups:
            assert (mmap["base"] + offset) % 64 == 0
            assert size % 16 == 0 and size > 0
            assert offset >= end and offset - end < 64
            end = offset + size
    assert len(data) == end


def test_group_images_share_one_coding_and_word_width_and_are_self_contained():
    item = layers()[2]
    images = offchip.group_images(weight_of(item), weights="int", wbits=4, lanes=3, simd=4)
    assert len({(i.meta["coding"], i.word_bits) for i in images}) == 1
    # the dense group sets the layer's word width; the sparse ones are shorter
    assert len({i.meta["depth"] for i in images}) > 1
    own = sparse_format.encode(weight_of(item)[3:6], weights="int", wbits=4, lanes=3, simd=4,
                               coding=images[1].meta["coding"])
    assert images[1].meta["stream_bits"] == own.meta["stream_bits"]
    assert images[1].meta["pad_bits"] < images[1].word_bits


@pytest.mark.parametrize("bus_bytes", [4, 8, 16])
def test_offchip_bytes_per_frame_are_the_groups_in_whole_beats(bus_bytes):
    data, mmap = offchip.layout(layers(), bus_bytes=bus_bytes)
    for item, (name, entry) in zip(layers(), mmap["layers"].items()):
        W = weight_of(item)
        sizes = offchip.group_bytes(W, **_mode(item), lanes=item[1], simd=item[2],
                                    bus_bytes=bus_bytes)
        assert sizes == [size for _, size in entry["groups"]]
        total = offchip.offchip_bytes(W, **_mode(item), lanes=item[1], simd=item[2],
                                      bus_bytes=bus_bytes)
        assert total == sum(sizes) and total % bus_bytes == 0


def test_binary_group_bytes_by_hand():
    # 32 x 72 binary at L=8, S=8: a group is 9 beats of 64 one-bit codes = 576 bits = 72
    # bytes: 72 on a 4- or 8-byte bus, 80 on a 16-byte bus (5 beats).
    W = layers()[0][0].W
    assert offchip.group_bytes(W, weights="binary", lanes=8, simd=8, bus_bytes=8) == [72] * 4
    assert offchip.group_bytes(W, weights="binary", lanes=8, simd=8, bus_bytes=16) == [80] * 4
    data, mmap = offchip.layout(layers()[:1], bus_bytes=16)
    assert mmap["layers"]["c4"]["groups"] == [[0, 80], [128, 80], [256, 80], [384, 80]]


def test_layout_is_deterministic():
    first = offchip.layout(layers(), base=64, bus_bytes=8)
    second = offchip.layout(layers(), base=64, bus_bytes=8)
    assert first[0] == second[0]
    assert json.dumps(first[1], sort_keys=True) == json.dumps(second[1], sort_keys=True)
    assert (hashlib.sha256(first[0]).hexdigest()
            != hashlib.sha256(offchip.layout(layers(seed=2), base=64)[0]).hexdigest())


def test_the_bit_stream_is_lsb_first_across_bytes():
    # two 12-bit words 0xABC, 0x123 -> stream bits LSB first -> bytes 0xBC 0x3A 0x12
    assert offchip.words_to_bytes([0xABC, 0x123], 12, 4) == bytes([0xBC, 0x3A, 0x12, 0])
    assert offchip.bytes_to_words(bytes([0xBC, 0x3A, 0x12, 0]), 12) == [0xABC, 0x123]


@pytest.mark.parametrize("kwargs,message", [
    ({"base": 32}, "base: must be a non-negative multiple of 64, got 32"),
    ({"base": -64}, "base: must be a non-negative multiple of 64"),
    ({"bus_bytes": 3}, "bus_bytes: must be one of 4, 8, 16, got 3"),
    ({"base": (1 << 32) - 64}, "base: the image ends at"),
])
def test_layout_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        offchip.layout(layers(), **kwargs)


def test_layout_rejects_a_repeated_layer_and_a_layer_without_weights():
    item = layers()[0]
    with pytest.raises(ValueError, match="^layers: layer 'c4' appears twice"):
        offchip.layout([item, item])
    with pytest.raises(ValueError, match="^layers: layer 'p' has no weights"):
        offchip.layout([({"name": "p", "W": None, "weights": "binary"}, 1, 1)])


def test_read_words_names_a_missing_group():
    data, mmap = offchip.layout(layers())
    with pytest.raises(ValueError, match=r"^layer: no group 9 of 'c5'"):
        offchip.read_words(data, mmap, "c5", 9, 8)


def test_empty_layout():
    assert offchip.layout([], base=0) == (b"", {"base": 0, "bus_bytes": 8, "layers": {}})


@pytest.mark.parametrize("nbytes,bus_bytes,want", [
    (72, 8, (72, 1)), (65528, 8, (65528, 1)), (65536, 8, (32768, 2)),
    (65536, 16, (32768, 2)), (200_000, 16, (50000, 4)), (200_004, 4, (50004, 4))])
def test_a_group_is_one_dma_command_of_equal_rows(nbytes, bus_bytes, want):
    width, rows = offchip.fetch_rows(nbytes, bus_bytes)
    assert (width, rows) == want
    assert width % bus_bytes == 0 and width <= 65535
    assert nbytes <= width * rows < nbytes + rows * bus_bytes


def test_a_group_over_64_kbytes_takes_whole_rows():
    # int8, 8 x 9216: one group of 73728 bytes -> two rows of 36864
    W = np.random.default_rng(3).integers(-128, 128, size=(8, 9216))
    W[W == 0] = 1
    assert offchip.group_bytes(W, weights="int", wbits=8, lanes=8, simd=8,
                               bus_bytes=16) == [73728]
    data, mmap = offchip.layout([({"name": "big", "W": W, "weights": "int8"}, 8, 8)],
                                bus_bytes=16)
    assert mmap["layers"]["big"]["groups"] == [[0, 73728]]
    image = offchip.group_images(W, weights="int8", lanes=8, simd=8)[0]
    words = offchip.read_words(data, mmap, "big", 0, image.word_bits)
    assert np.array_equal(sparse_format.decode(words[:image.depth], image.meta), W)


def test_group_images_stay_sparse1_unless_asked():
    """The frame stage passes its decoder a coding and a word width only, so group images
    are /1 even where /2 is smaller; with ``codes`` they are /2 and decode to their rows."""
    rng = np.random.default_rng(16)
    W = matrix(rng, 8, 64, "ternary", zeros=0.9)
    fold = dict(weights="ternary", lanes=4, simd=8)
    first = offchip.group_images(W, **fold)
    assert {g.meta["format"] for g in first} == {sparse_format.FORMAT}
    assert offchip.layer_format(W, **fold)[0] == "masked"
    second = offchip.group_images(W, **fold, codes=sparse_format.CODES)
    assert {g.meta["format"] for g in second} == {sparse_format.FORMAT2}
    assert sum(g.bits for g in second) < sum(g.bits for g in first)
    assert len({(g.meta["block"], g.meta["inner"], g.word_bits) for g in second}) == 1
    for g, image in enumerate(second):
        assert np.array_equal(sparse_format.decode(image.words, image.meta), W[4 * g:4 * g + 4])
    code = offchip.layer_code(W, **fold, codes=("block",), inner="dense")
    assert (code["coding"], code["inner"]) == ("block", "dense")
