"""maxpool_stage against quant.reference.run_layer: frames back to back, stalls, both signs."""
import numpy as np
import pytest

from assemblies.pool import BLOCK, input_beats
from blocks.maxpool import flush_overlap
from blocks.spec import ParameterError, registry
from blocks.stream import unpack
from cnn_ip.cosim import lint, run_streams
from cnn_ip.export import write_verilog
from quant import reference

# (C, H, W), k, stride, pad, pad_end, lanes, abits, signed
CASES = [
    ((4, 6, 5), 2, 2, 0, None, 2, 4, False),
    ((2, 5, 6), 3, 1, 1, None, 1, 8, True),
    ((4, 7, 7), 3, 2, 1, None, 4, 3, True),
    ((2, 6, 6), 2, 1, 0, 1, 2, 8, False),           # Tiny-YOLOv2's last pool, scaled down
    ((6, 5, 4), 2, 1, 1, None, 3, 2, False),
]


def pool_layer(shape, k, stride, pad, pad_end):
    c, h, w = shape
    after = pad if pad_end is None else pad_end
    out = (c, (h + pad + after - k) // stride + 1, (w + pad + after - k) // stride + 1)
    return reference.IntLayer(type="maxpool", name="pool", in_shape=shape, out_shape=out, k=k,
                              stride=stride, pad=pad, pad_end=pad_end)


def frames_in_range(shape, abits, signed, n, seed):
    """``n`` frames; the first all at the range's minimum, the rest mostly at its ends."""
    rng = np.random.default_rng(seed)
    lo = -(1 << (abits - 1)) if signed else 0
    hi = lo + (1 << abits) - 1
    c, h, w = shape
    x = rng.integers(lo, hi + 1, (n, h, w, c))
    x = np.where(rng.random(x.shape) < 0.5, rng.choice([lo, hi], x.shape), x)
    x[0] = lo
    return x, lo


@pytest.mark.parametrize("case", range(len(CASES)))
def test_matches_run_layer_back_to_back_under_stalls(hdl, tmp_path, case):
    shape, k, stride, pad, pad_end, lanes, abits, signed = CASES[case]
    layer = pool_layer(shape, k, stride, pad, pad_end)
    x, lo = frames_in_range(shape, abits, signed, 3, case)
    params = {"layer": layer, "lanes": lanes, "abits": abits, "signed": signed}
    expect = reference.run_layer(layer, x, lo=lo)
    n_out = expect.size // lanes
    out = run_streams(BLOCK, params=params, hdl=hdl, workdir=tmp_path, seed=case,
                      inputs={"s_axis_in": input_beats(x, lanes=lanes, abits=abits)},
                      expect={"m_axis_out": n_out}, idle=0.3, stall=0.4)
    beats = out["m_axis_out"]
    got = np.array([unpack(b.data, abits, lanes, signed=signed) for b in beats])
    assert np.array_equal(got.reshape(expect.shape), expect)
    per_frame = n_out // 3
    assert [i for i, b in enumerate(beats) if b.last] == [per_frame * f - 1 for f in (1, 2, 3)]


@pytest.mark.parametrize("case,groups", [(0, 1), (3, 1), (0, 2)])
def test_cycles_per_frame_as_estimated(case, groups):
    shape, k, stride, pad, pad_end, lanes, abits, signed = CASES[case]
    layer = pool_layer(shape, k, stride, pad, pad_end)
    x, _ = frames_in_range(shape, abits, signed, 3, 7)
    params = {"layer": layer, "lanes": lanes // groups, "abits": abits, "signed": signed,
              "order_in": "group-major" if groups > 1 else "raster", "groups_in": groups}
    lanes //= groups
    est = BLOCK.estimate(**BLOCK.prepared(**params)[1])
    out = run_streams(BLOCK, params=params, inputs={"s_axis_in": input_beats(
                          x, lanes=lanes, abits=abits, groups_in=groups)},
                      expect={"m_axis_out": reference.run_layer(layer, x).size // lanes})
    ends = [b.cycle for b in out["m_axis_out"] if b.last]
    assert est["per"] == "frame"
    assert ends[2] - ends[1] == ends[1] - ends[0]
    if pad_end is None:                    # no flush: exactly the input beats (Contract 7)
        assert ends[1] - ends[0] == est["cycles"] == int(np.prod(shape)) // lanes
    else:                                  # flushes: an upper bound, overlap stated
        assert 0 <= est["cycles"] - (ends[1] - ends[0]) <= flush_overlap(
            channels=shape[0], lanes=lanes, k=k, pad=pad)


@pytest.mark.parametrize("groups", [1, 2])
def test_registered_converts_and_lints(tmp_path, groups):
    assert registry(("blocks", "assemblies"))["maxpool_stage"] is BLOCK
    order = "group-major" if groups > 1 else "raster"
    params, args = BLOCK.prepared(**{**BLOCK.example(), "order_in": order, "groups_in": groups})
    assert BLOCK.derived(**args)["out_width"] == 13
    verilog = write_verilog(BLOCK, tmp_path, args)
    assert lint(verilog, "maxpool_stage", BLOCK.lint_waivers) == []


def test_model_file_layer(tmp_path):
    layer = pool_layer((4, 4, 4), 2, 2, 0, None)
    reference.save_model(tmp_path / "m.npz", [layer])
    params, args = BLOCK.prepared(layer=f"{tmp_path / 'm.npz'}:pool", lanes=2)
    assert args["layer"].k == 2 and params["lanes"] == 2
    with pytest.raises(ParameterError, match=r"^layer: .* has no layer 'x'"):
        BLOCK.prepared(layer=f"{tmp_path / 'm.npz'}:x", lanes=2)


@pytest.mark.parametrize("change,message", [
    (dict(type="conv"), r"^layer: maxpool_stage builds maxpool layers"),
    (dict(out_shape=(4, 3, 3)), r"^layer: out_shape \(4, 3, 3\) is not what its geometry"),
    (dict(pad=2), r"^pad: must be less than k \(2\)"),
])
def test_rejects_bad_layers(change, message):
    layer = pool_layer((4, 4, 4), 2, 2, 0, None)
    for key, value in change.items():
        setattr(layer, key, value)
    with pytest.raises(ParameterError, match=message):
        BLOCK.validate(layer=layer, lanes=2)


def test_rejects_lanes_not_dividing_channels():
    with pytest.raises(ParameterError, match=r"^lanes: must divide the channels \(4\), got 3"):
        BLOCK.validate(layer=pool_layer((4, 4, 4), 2, 2, 0, None), lanes=3)


# group-major input: (C, H, W), k, stride, pad, pad_end, lanes, abits, signed, groups
GROUPED = [
    ((8, 6, 6), 2, 2, 0, None, 2, 4, False, 2),
    ((12, 5, 5), 3, 1, 1, None, 3, 8, True, 4),
    ((6, 6, 6), 2, 1, 0, 1, 1, 3, False, 3),         # pad_end: flushes between sub-maps
]


@pytest.mark.parametrize("case", range(len(GROUPED)))
def test_group_major_matches_run_layer_with_one_tlast_a_frame(hdl, tmp_path, case):
    shape, k, stride, pad, pad_end, lanes, abits, signed, groups = GROUPED[case]
    layer = pool_layer(shape, k, stride, pad, pad_end)
    x, lo = frames_in_range(shape, abits, signed, 3, 10 + case)
    params = {"layer": layer, "lanes": lanes, "abits": abits, "signed": signed,
              "order_in": "group-major", "groups_in": groups}
    expect = reference.run_layer(layer, x, lo=lo)           # (N, Ho, Wo, C)
    n_out = expect.size // lanes
    out = run_streams(BLOCK, params=params, hdl=hdl, workdir=tmp_path, seed=case,
                      inputs={"s_axis_in": input_beats(x, lanes=lanes, abits=abits,
                                                       groups_in=groups)},
                      expect={"m_axis_out": n_out}, idle=0.3, stall=0.4)
    beats = out["m_axis_out"]
    got = np.array([unpack(b.data, abits, lanes, signed=signed) for b in beats])
    # group-major by hand: sub-map g holds channels [g*C/G, (g+1)*C/G), raster inside
    n, ho, wo, c = expect.shape
    sub = c // groups
    want = np.concatenate([expect[f, :, :, g * sub:(g + 1) * sub].reshape(-1)
                           for f in range(n) for g in range(groups)])
    assert np.array_equal(got.reshape(-1), want)
    per_frame = n_out // 3
    assert [i for i, b in enumerate(beats) if b.last] == [per_frame * f - 1 for f in (1, 2, 3)]
    assert [(b.data, b.last) for b in beats] == BLOCK.golden(x, **params)


def test_group_major_rejects_groups_not_dividing_channels():
    grouped = {"order_in": "group-major"}
    with pytest.raises(ParameterError, match=r"^groups_in: must divide the channels \(6\)"):
        BLOCK.validate(layer=pool_layer((6, 4, 4), 2, 2, 0, None), lanes=1, groups_in=4,
                       **grouped)
    with pytest.raises(ParameterError, match=r"^lanes: must divide a sub-map's channels "
                                             r"\(8 / groups_in 4 = 2\), got 4"):
        BLOCK.validate(layer=pool_layer((8, 4, 4), 2, 2, 0, None), lanes=4, groups_in=4,
                       **grouped)
    with pytest.raises(ParameterError, match=r"^groups_in: must be 1 for a raster input"):
        BLOCK.validate(layer=pool_layer((8, 4, 4), 2, 2, 0, None), lanes=1, groups_in=4)
