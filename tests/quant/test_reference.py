"""The integer reference model against independent slow loops (plain Python integers)."""
import numpy as np
import pytest

from quant import reference
from quant.reference import IntLayer


def slow_requant(acc, m, m_neg, s, lo, hi):
    mult = m_neg if acc < 0 else m
    return min(max((acc * mult + 2 ** (s - 1)) // 2 ** s, lo), hi)   # // is floor: arithmetic shift


def slow_conv(x, kern, bias, stride, pad):
    """x (N, H, W, Cin), kern (Cout, K, K, Cin): accumulators by explicit loops."""
    n_, h, w, cin = x.shape
    cout, k = kern.shape[0], kern.shape[1]
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    out = np.zeros((n_, ho, wo, cout), dtype=object)
    for n in range(n_):
        for oy in range(ho):
            for ox in range(wo):
                for co in range(cout):
                    acc = int(bias[co])
                    for ky in range(k):
                        for kx in range(k):
                            iy, ix = oy * stride - pad + ky, ox * stride - pad + kx
                            if 0 <= iy < h and 0 <= ix < w:
                                for ci in range(cin):
                                    acc += int(x[n, iy, ix, ci]) * int(kern[co, ky, kx, ci])
                    out[n, oy, ox, co] = acc
    return out


def conv_layer(kern, bias, m, m_neg, s, lo, hi, stride, pad, h, w):
    cout, k, _, cin = kern.shape
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    return IntLayer(type="conv", name="c", in_shape=(cin, h, w), out_shape=(cout, ho, wo), k=k,
                    stride=stride, pad=pad, weights="int8", act="relu", act_bits=4, S=s, lo=lo,
                    hi=hi, W=kern.reshape(cout, -1), bias=bias, M=m, M_neg=m_neg)


@pytest.mark.parametrize("k,stride,pad,h,w", [(3, 1, 1, 5, 6), (3, 2, 1, 7, 5), (2, 2, 0, 4, 4),
                                              (1, 1, 0, 3, 3), (5, 1, 2, 5, 5), (3, 3, 2, 6, 7)])
def test_conv_matches_slow_loops(k, stride, pad, h, w):
    rng = np.random.default_rng(k * 100 + stride * 10 + pad)
    cin, cout = 3, 4
    x = rng.integers(0, 256, (2, h, w, cin))
    kern = rng.integers(-128, 128, (cout, k, k, cin))
    bias = rng.integers(-5000, 5000, cout)
    m, m_neg, s = rng.integers(1, 4096, cout), rng.integers(0, 512, cout), 17
    lo, hi = -8, 7
    layer = conv_layer(kern, bias, m, m_neg, s, lo, hi, stride, pad, h, w)
    acc = slow_conv(x, kern, bias, stride, pad)
    assert np.array_equal(reference.accumulate(layer, x), acc.astype(np.int64))
    expect = np.vectorize(lambda a, c: slow_requant(int(a), int(m[c]), int(m_neg[c]), s, lo, hi))(
        acc, np.arange(cout).reshape(1, 1, 1, -1))
    assert np.array_equal(reference.run_layer(layer, x), expect.astype(np.int64))


def test_maxpool_matches_slow_loops():
    rng = np.random.default_rng(1)
    x = rng.integers(-8, 8, (2, 7, 6, 3))
    for k, stride in ((2, 2), (3, 2), (2, 1), (3, 3)):
        got = reference.maxpool(x, k, stride)
        ho, wo = (7 - k) // stride + 1, (6 - k) // stride + 1
        assert got.shape == (2, ho, wo, 3)
        for n, oy, ox, c in np.ndindex(got.shape):
            window = [x[n, oy * stride + dy, ox * stride + dx, c] for dy in range(k) for dx in range(k)]
            assert got[n, oy, ox, c] == max(window)


@pytest.mark.parametrize("k,stride,pad,pad_end,lo", [(2, 1, 0, 1, 0), (2, 1, 1, 1, -8),
                                                      (3, 2, 1, None, -8), (3, 1, 2, 2, 0),
                                                      (2, 2, 1, 0, 0), (3, 3, 1, 2, -2)])
def test_padded_maxpool_pads_with_the_range_minimum(k, stride, pad, pad_end, lo):
    rng = np.random.default_rng(k * 10 + stride + pad)
    h, w = 7, 6
    x = rng.integers(lo, lo + 16, (2, h, w, 3))
    x[0, 0, 0, 0], x[1, -1, -1, -1] = lo, lo          # the minimum sits next to padding
    after = pad if pad_end is None else pad_end
    layer = IntLayer(type="maxpool", name="p", in_shape=(3, h, w), out_shape=(3, 0, 0), k=k,
                     stride=stride, pad=pad, pad_end=pad_end)
    got = reference.run_layer(layer, x, lo=lo)
    ho, wo = (h + pad + after - k) // stride + 1, (w + pad + after - k) // stride + 1
    assert got.shape == (2, ho, wo, 3)
    for n, oy, ox, c in np.ndindex(got.shape):
        cells = [(oy * stride + dy - pad, ox * stride + dx - pad) for dy in range(k) for dx in range(k)]
        values = [x[n, y, xx, c] if 0 <= y < h and 0 <= xx < w else lo for y, xx in cells]
        assert got[n, oy, ox, c] == max(values)
    if lo < 0:          # padding with a value above the range's minimum is refused
        with pytest.raises(ValueError, match="^lo: "):
            reference.run_layer(layer, x, lo=0)


def test_tiny_yolo_last_pool_keeps_13x13_and_run_pads_with_the_previous_range():
    rng = np.random.default_rng(4)
    conv = conv_layer(np.array([-1, 1]).reshape(2, 1, 1, 1), np.zeros(2, np.int64),
                      np.ones(2, np.int64), np.ones(2, np.int64), 1, -8, 7, 1, 0, 13, 13)
    pool = IntLayer(type="maxpool", name="p", in_shape=(2, 13, 13), out_shape=(2, 13, 13),
                    k=2, stride=1, pad=0, pad_end=1)
    x = rng.integers(0, 256, (1, 13, 13, 1)).astype(np.uint8)
    y = reference.run_layer(conv, x.astype(np.int64))
    assert y.min() < 0            # signed input to the pool: padding with 0 would win
    out = reference.run([conv, pool], x)
    assert out.shape == (1, 13, 13, 2)
    assert np.array_equal(out[0, -1, -1], y[0, -1, -1])         # a window of one real cell
    assert np.array_equal(out[0, 0, 0], y[0, :2, :2].max(axis=(0, 1)))


def test_dense_sees_the_map_in_yxc_order():
    rng = np.random.default_rng(2)
    h, w, c, out = 2, 3, 4, 5
    x = rng.integers(0, 16, (3, h, w, c))
    W = rng.integers(-1, 2, (out, h * w * c))
    bias = rng.integers(-20, 20, out)
    m = rng.integers(1, 255, out)
    layer = IntLayer(type="dense", name="d", in_shape=(c, h, w), out_shape=(out, 0, 0),
                     weights="ternary", final=True, W=W, bias=bias, M=m, M_neg=m)
    for n in range(3):
        for o in range(out):
            acc = int(bias[o])
            column = 0
            for y in range(h):            # raster order, channels fastest
                for xx in range(w):
                    for ch in range(c):
                        acc += int(x[n, y, xx, ch]) * int(W[o, column])
                        column += 1
            assert reference.run_layer(layer, x)[n, o] == acc * int(m[o])


@pytest.mark.parametrize("acc,m,m_neg,s,lo,hi,expect", [
    (3, 1, 1, 1, 0, 15, 2),        # 1.5 rounds up (half adds, then floor)
    (1, 1, 1, 1, 0, 15, 1),        # 0.5 -> 1
    (-3, 1, 1, 1, -8, 7, -1),      # -1.5 -> -1 (round half up, arithmetic shift)
    (-1, 1, 1, 1, -8, 7, 0),       # -0.5 -> 0
    (-5, 3, 3, 2, -8, 7, -4),      # -15/4 = -3.75 -> -4
    (1000, 5, 5, 4, 0, 15, 15),    # clamp high
    (-1000, 5, 5, 4, 0, 15, 0),    # ReLU: negative clamps to 0
    (-1000, 5, 1, 4, -8, 7, -8),   # leaky: M_neg, then clamp low
    (-40, 8, 1, 3, -8, 7, -5),     # leaky: -40 * 1 / 8 = -5 exactly
    (40, 8, 1, 3, -8, 7, 7),       # positive uses M: 40 -> clamp 7
    (2 ** 40, 2 ** 15, 1, 40, -2 ** 20, 2 ** 20, 2 ** 15),   # wide accumulator, no overflow
])
def test_requantization_edge_cases(acc, m, m_neg, s, lo, hi, expect):
    assert slow_requant(acc, m, m_neg, s, lo, hi) == expect
    got = reference.requantize(np.array([acc]), np.array([m]), np.array([m_neg]), s, lo, hi)
    assert got.dtype == np.int64 and got[0] == expect


def test_requantization_refuses_to_overflow():
    with pytest.raises(OverflowError):
        reference.requantize(np.array([2 ** 40]), np.array([2 ** 30]), np.array([1]), 8, 0, 255)


def test_model_file_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    kern = rng.integers(-3, 4, (4, 3, 3, 1))
    conv = conv_layer(kern, rng.integers(-9, 9, 4), rng.integers(1, 99, 4), rng.integers(1, 99, 4),
                      9, 0, 15, 1, 1, 4, 4)
    pool = IntLayer(type="maxpool", name="p", in_shape=(4, 4, 4), out_shape=(4, 2, 2), k=2, stride=2)
    dense = IntLayer(type="dense", name="d", in_shape=(4, 2, 2), out_shape=(3, 0, 0),
                     weights="int3", final=True, W=rng.integers(-3, 4, (3, 16)),
                     bias=rng.integers(-9, 9, 3), M=rng.integers(1, 9, 3), M_neg=rng.integers(1, 9, 3))
    reference.save_model(tmp_path / "m.npz", [conv, pool, dense])
    back = reference.load_model(tmp_path / "m.npz")
    x = rng.integers(0, 256, (5, 4, 4, 1)).astype(np.uint8)
    assert np.array_equal(reference.run(back, x), reference.run([conv, pool, dense], x))
    with pytest.raises(ValueError, match="uint8"):
        reference.run(back, x.astype(np.int64))


@pytest.mark.parametrize("kind,reason", [
    ("empty", "No data left in file"),
    ("npy", "one array (.npy), not an .npz archive"),
    ("no meta", "meta is not a file in the archive"),
    ("meta of numbers", "object is not subscriptable"),
])
def test_find_layer_names_a_damaged_model_file(tmp_path, kind, reason):
    # A stage's --layer: every damaged file is one ValueError naming the parameter and file
    path = tmp_path / "m.npz"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "npy":
        with open(path, "wb") as handle:
            np.save(handle, np.zeros(3))
    else:
        with open(path, "wb") as handle:
            np.savez(handle, **({"x": np.zeros(2)} if kind == "no meta"
                                else {"meta": np.array("[1]")}))
    with pytest.raises(ValueError) as error:
        reference.find_layer(f"{path}:conv1")
    assert str(error.value).startswith(f"layer: {path}: not a model.npz (")
    assert reason in str(error.value)
