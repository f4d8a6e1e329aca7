import numpy as np
import pytest

from quant import prune, sparse_format
from quant.sparse_format import CODES, FIRST_CODES, encode, to_beats


def test_unstructured_drops_exactly_the_smallest_magnitudes():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(16, 40))
    keep = prune.keep_mask(W, 0.7)
    assert (~keep).sum() == round(0.7 * W.size)
    assert np.abs(W[~keep]).max() <= np.abs(W[keep]).min()


def test_unstructured_ties_are_broken_by_position():
    W = np.array([[1, -1, 1, 2]])
    assert prune.keep_mask(W, 0.5).tolist() == [[False, False, True, True]]


@pytest.mark.parametrize("lanes,simd,block", [(8, 16, 8), (8, 16, 16), (4, 6, 8), (2, 4, 1)])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 1.0])
def test_block_pruning_zeroes_whole_aligned_blocks_of_the_beat(lanes, simd, block, sparsity):
    rng = np.random.default_rng(1)
    W = rng.normal(size=(2 * lanes, 3 * simd))
    pruned = prune.prune(W, sparsity, structure="block", lanes=lanes, simd=simd, block=block)
    # the blocks, written out from the beat order by hand: element p = l*simd + s
    blocks = []
    for g in range(2):
        for r in range(3):
            beat = [(g * lanes + l, r * simd + s) for l in range(lanes) for s in range(simd)]
            blocks += [beat[k:k + block] for k in range(0, len(beat), block)]
    dropped = [b for b in blocks if all(pruned[i] == 0 for i in b)]
    kept = [b for b in blocks if all(pruned[i] == W[i] for i in b)]
    assert len(dropped) + len(kept) == len(blocks)
    assert len(dropped) == round(sparsity * len(blocks))
    if dropped and kept:
        score = lambda b: sum(abs(W[i]) for i in b)  # noqa: E731
        assert max(map(score, dropped)) <= min(map(score, kept))


def test_tensor_keep_mask_follows_the_matrix_order():
    rng = np.random.default_rng(2)
    cout, cin, k = 8, 4, 3
    weight = rng.normal(size=(cout, cin, k, k))
    matrix = np.zeros((cout, k * k * cin))
    for co in range(cout):
        for c in range(cin):
            for ky in range(k):
                for kx in range(k):
                    matrix[co, (ky * k + kx) * cin + c] = weight[co, c, ky, kx]
    args = dict(structure="block", lanes=4, simd=4, block=8)
    mask = prune.tensor_keep_mask(weight, 0.6, **args)
    expected = prune.keep_mask(matrix, 0.6, **args)
    for co in range(cout):
        for c in range(cin):
            for ky in range(k):
                for kx in range(k):
                    assert mask[co, c, ky, kx] == expected[co, (ky * k + kx) * cin + c]
    # a dense layer reading a flattened (c, h, w) map takes its columns in (y, x, c) order
    dense = weight.reshape(cout, -1)
    flat = prune.tensor_keep_mask(dense, 0.6, in_shape=(cin, k, k), **args)
    assert np.array_equal(flat, mask.reshape(cout, -1))


@pytest.mark.parametrize("mode", [("ternary", None), ("int", 4)])
@pytest.mark.parametrize("structure,block", [("unstructured", None), ("block", 8)])
@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_pruned_bits_are_what_the_writer_writes(mode, structure, block, sparsity):
    weights, wbits = mode
    rng = np.random.default_rng(3)
    top = 1 if weights == "ternary" else 7
    W = rng.choice([v for v in range(-top, top + 1) if v], size=(16, 96))
    W[0, :5] = 0                      # zeros before pruning stay zeros
    args = dict(structure=structure, lanes=4, simd=8, block=block)
    for codes in (CODES, FIRST_CODES):          # /2 and /1 (off-chip group images)
        got = prune.pruned_bits(W, weights=weights, wbits=wbits, sparsity=sparsity,
                                codes=codes, **args)
        image = encode(prune.prune(W, sparsity, **args), weights=weights, wbits=wbits,
                       lanes=4, simd=8, codes=codes)
        assert got["bits"] == image.bits and got["coding"] == image.meta["coding"]
        assert got["sparsity"] == image.meta["sparsity"]


def test_block_pruning_saves_bits_over_unstructured():
    rng = np.random.default_rng(4)
    W = rng.normal(size=(64, 576))
    bits = {s: prune.pruned_bits(W, weights="ternary", sparsity=0.9, structure=s, lanes=8,
                                 simd=16, block=8 if s == "block" else None)["bits_per_weight"]
            for s in prune.STRUCTURES}
    assert bits["block"] < 0.4 < 0.6 < bits["unstructured"] < 0.75


def test_pruned_bits_float_weights_count_kept_weights_as_nonzero():
    W = np.array([[0.5, -0.1, 0.0, 2.0]])
    got = prune.pruned_bits(W, weights="ternary", sparsity=0.25, lanes=1, simd=4)
    # 0.0 is the smallest and pruned; -0.1 is kept: 3 non-zeros, masked beat = 4 + 3 bits
    assert got["sparsity"] == 0.25 and got["coding"] == "masked" and got["bits"] == 7


@pytest.mark.parametrize("call,message", [
    (lambda W: prune.keep_mask(W, 1.5), r"^sparsity: must be a number in 0\.\.1"),
    (lambda W: prune.keep_mask(W, 0.5, structure="channel"), r"^structure: must be one of"),
    (lambda W: prune.keep_mask(W, 0.5, structure="block", lanes=4, simd=8, block=3),
     r"^block: must be a power of two dividing lanes\*simd = 32"),
    (lambda W: prune.keep_mask(W, 0.5, structure="block", lanes=3, simd=8, block=8),
     r"^W: shape \(8, 16\) is not a multiple of \(lanes, simd\) = \(3, 8\)"),
    (lambda W: prune.keep_mask(W, 0.5, structure="block", lanes=0, simd=8, block=8),
     r"^lanes: must be a positive integer"),
    (lambda W: prune.keep_mask(W[0], 0.5), r"^W: must be a non-empty numeric 2-D"),
    (lambda W: prune.pruned_bits(W, weights="binary", sparsity=0.5, lanes=4, simd=8),
     r"^sparsity: binary weights cannot be zero"),
    (lambda W: prune.pruned_bits(W, weights="int", wbits=9, sparsity=0.5, lanes=4, simd=8),
     r"^wbits: must be an integer in 2\.\.8"),
    (lambda W: prune.tensor_keep_mask(np.ones((2, 2, 2)), 0.5), r"^weight: must be a conv"),
])
def test_bad_input_names_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call(np.ones((8, 16)))


def test_block_sizes_are_powers_of_two_dividing_the_beat():
    assert sparse_format.block_sizes(128) == [1, 2, 4, 8, 16, 32, 64, 128]
    assert sparse_format.block_sizes(24) == [1, 2, 4, 8]
    assert to_beats(np.arange(8).reshape(2, 4), 2, 2).tolist() == [[0, 1, 4, 5], [2, 3, 6, 7]]


def test_blocks_within_simd_do_not_depend_on_the_packing():
    # a block of B dividing simd is B aligned reduction elements of one output channel
    rng = np.random.default_rng(5)
    W = rng.normal(size=(16, 64))
    masks = [prune.keep_mask(W, 0.8, structure="block", lanes=lanes, simd=simd, block=8)
             for lanes, simd in ((8, 16), (4, 8), (2, 32), (16, 8))]
    for mask in masks[1:]:
        assert np.array_equal(mask, masks[0])
    segments = masks[0].reshape(16, 8, 8)
    assert np.all(segments.all(axis=2) | ~segments.any(axis=2))
