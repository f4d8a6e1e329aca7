import re

import numpy as np
import pytest

from blocks.frame_buffer import BLOCK, golden, pixel_beats
from blocks.line_buffer import BANK_WORDS, read_stages
from blocks.spec import ParameterError
from cnn_ip.cosim import lint, run_streams
from cnn_ip.export import generate
from window_frames import random_frames


def geometry(width, height, channels, k, stride, pad, abits, simd, lanes_in, *,
             order_in="raster", groups_in=1, repeat=1, buffers=1):
    return dict(width=width, height=height, channels=channels, k=k, stride=stride, pad=pad,
                abits=abits, simd=simd, lanes_in=lanes_in, order_in=order_in,
                groups_in=groups_in, repeat=repeat, buffers=buffers)


def gm(groups, **kw):
    return {"order_in": "group-major", "groups_in": groups, **kw}


# (geometry, frames, Icarus too): raster and group-major input, lanes_in below, equal to
# and above simd, 1 and 2 buffers, K 1/3, stride 1/2, pad 0/1, repeat 1/3, maps read in
# one register stage and in two (LUT RAM in banks, the last one partial).  Every geometry
# runs on the MyHDL model; the converted Verilog runs under Icarus once per distinct
# structure (the suite's time budget).
GEOMETRIES = [
    (geometry(5, 4, 4, 3, 1, 1, 4, 2, 2), 2, False),
    (geometry(4, 5, 8, 3, 2, 0, 3, 4, 2, buffers=2), 2, False),
    (geometry(3, 3, 6, 1, 1, 0, 8, 1, 3, **gm(2, repeat=3)), 2, True),   # a word, 3 beats
    (geometry(4, 3, 8, 3, 1, 1, 2, 4, 2, **gm(4, buffers=2)), 3, True),  # banks, 2 stages
    (geometry(5, 5, 4, 3, 2, 1, 5, 2, 4, **gm(1, repeat=3, buffers=2)), 2, True),
    (geometry(6, 2, 2, 1, 2, 0, 1, 2, 1, repeat=3, buffers=2), 3, False),
    (geometry(2, 3, 12, 3, 1, 1, 8, 4, 2, **gm(3, repeat=2)), 2, False),
    # a one-word map in each of two buffers, both sub-maps in that word
    (geometry(1, 1, 4, 1, 1, 0, 2, 4, 2, **gm(2, buffers=2)), 4, True),
    # eight banks, a pixel's channels a whole number of rounds of them (no bank wrap: its
    # compare against 8 on a 3-bit bank once failed lint); a one-pixel map of 128 words
    # filling the 7-bit addresses (its pixel step, 128, once overflowed them)
    (geometry(2, 2, 8, 1, 1, 0, 4, 8, 1), 2, True),
    (geometry(1, 1, 128, 1, 1, 0, 6, 1, 1), 2, True),
]


def ident(p):
    return (f"W{p['width']}H{p['height']}C{p['channels']}K{p['k']}s{p['stride']}P{p['pad']}"
            f"A{p['abits']}S{p['simd']}Li{p['lanes_in']}{p['order_in'][0]}{p['groups_in']}"
            f"R{p['repeat']}B{p['buffers']}")


def cases(table):
    """``(params, extra, hdl)`` for every row, the Icarus run only where the row asks."""
    return [(p, extra, hdl) for p, extra, cosim in table
            for hdl in ("myhdl", "icarus")[:1 + cosim]]


def run(params, frames, hdl, workdir, **options):
    beats = pixel_beats(frames, **params)
    want = golden(frames, **params)
    out = run_streams(BLOCK, hdl=hdl, workdir=workdir, inputs={"s_axis_px": beats},
                      expect={"m_axis_win": len(want)}, params=params, **options)
    got = [(b.data, b.last) for b in out["m_axis_win"]]
    assert len(got) == len(want)
    first_bad = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), None)
    assert first_bad is None, f"beat {first_bad}: got {got[first_bad]}, want {want[first_bad]}"
    return out


@pytest.mark.parametrize("params,count,hdl", cases(GEOMETRIES),
                         ids=[f"{h}-{ident(p)}" for p, _, h in cases(GEOMETRIES)])
def test_windows_match_golden_model_under_stalls(tmp_path, params, count, hdl):
    seed = sum(v for v in params.values() if isinstance(v, int))
    run(params, random_frames(params, count, seed), hdl, tmp_path, idle=0.3, stall=0.4,
        seed=seed)


# ------------------------------------------------------------------ timing

RATES = [
    (geometry(4, 3, 4, 3, 1, 1, 3, 2, 2), None, False),        # one buffer: F + R
    (geometry(4, 3, 4, 3, 1, 1, 3, 2, 2, buffers=2), None, False),  # read bound: R
    (geometry(6, 4, 4, 1, 2, 0, 3, 4, 1, buffers=2), None, False),  # fill bound: F
    (geometry(3, 3, 8, 3, 1, 0, 2, 4, 2, **gm(2, repeat=3, buffers=2)), None, True),
]


@pytest.mark.parametrize("params,_,hdl", cases(RATES),
                         ids=[f"{h}-{ident(p)}" for p, _, h in cases(RATES)])
def test_cycles_per_frame_and_latency_are_as_documented(tmp_path, params, _, hdl):
    # Four frames back to back, no stalls: frames 1..3 start exactly `cycles` apart.
    frames = random_frames(params, 4, 11)
    out = run(params, frames, hdl, tmp_path, drain=10)
    received, accepted = out["m_axis_win"], out["s_axis_px"]
    per_frame = len(received) // 4
    starts = [received[i * per_frame].cycle for i in range(4)]
    est = BLOCK.estimate(**params)
    assert est["per"] == "frame"
    assert [b - a for a, b in zip(starts[1:], starts[2:])] == [est["cycles"]] * 2
    fill, read = est["fill"], est["read"]
    assert est["cycles"] == (fill + read if params["buffers"] == 1 else max(fill, read))
    # One cycle to see the map complete, then the RAM's read stages.
    stages = read_stages(params["lanes_in"] * params["abits"],
                         params["buffers"] * fill * params["lanes_in"]
                         // max(params["simd"], params["lanes_in"]))
    assert starts[0] - accepted[0].cycle == est["latency"] == fill + stages
    # Inside a pass the output never bubbles: one window beat a cycle.
    first = [b.cycle for b in received[:per_frame]]
    assert first[-1] - first[0] == per_frame - 1


# ------------------------------------------------------------------ structure

LINT = [BLOCK.example(), geometry(1, 1, 1, 1, 1, 0, 1, 1, 1),
        geometry(7, 6, 16, 5, 2, 2, 8, 16, 2, **gm(8, repeat=4)),
        geometry(13, 13, 32, 3, 1, 1, 6, 4, 8, **gm(4, buffers=2)),
        geometry(5, 9, 3, 3, 4, 2, 3, 3, 1, repeat=2, buffers=2),
        # a power-of-two depth with one buffer; a one-word map with two (once flagged WIDTH)
        geometry(8, 8, 32, 3, 1, 1, 4, 8, 8, repeat=4),
        geometry(1, 1, 4, 1, 1, 0, 2, 4, 2, **gm(2, buffers=2)),
        geometry(2, 2, 8, 1, 1, 0, 4, 8, 1), geometry(1, 1, 128, 1, 1, 0, 6, 1, 1)]


@pytest.mark.parametrize("params", LINT, ids=[ident(p) for p in LINT])
def test_lint_clean_and_memories_are_the_maps(tmp_path, params):
    generate(BLOCK, tmp_path, **params)
    lint(tmp_path / "frame_buffer.v", "frame_buffer", BLOCK.lint_waivers)
    est = BLOCK.estimate(**params)
    assert est["bram_bits"] == (params["buffers"] * params["height"] * params["width"]
                                * params["channels"] * params["abits"])
    text = (tmp_path / "frame_buffer.v").read_text()
    memories = re.findall(r"reg \[(\d+):0\] \w+ \[0:(\d+)-1\];", text)
    # A memory a bank of lanes_in channels; LUT RAM read in two stages in pieces of
    # BANK_WORDS words.
    banks = max(params["simd"], params["lanes_in"]) // params["lanes_in"]
    depth = est["bram_bits"] // (banks * params["lanes_in"] * params["abits"])
    pieces = -(-depth // BANK_WORDS) if read_stages(params["lanes_in"] * params["abits"],
                                                    depth) == 2 else 1
    assert len(memories) == banks * pieces
    assert sum((int(msb) + 1) * int(d) for msb, d in memories) == est["bram_bits"]


def test_golden_model_on_a_hand_worked_example():
    # 2x2 frame, one channel, K=2, pad 1: 3x3 windows, two passes.
    frame = np.array([[[1], [2]], [[3], [4]]])
    beats = golden(frame[None], width=2, height=2, channels=1, k=2, stride=1, pad=1,
                   abits=3, simd=1, repeat=2)
    windows = [[d for d, _ in beats[i:i + 4]] for i in range(0, len(beats), 4)]
    one_pass = [[0, 0, 0, 1], [0, 0, 1, 2], [0, 0, 2, 0],
                [0, 1, 0, 3], [1, 2, 3, 4], [2, 0, 4, 0],
                [0, 3, 0, 0], [3, 4, 0, 0], [4, 0, 0, 0]]
    assert windows == one_pass * 2
    assert [last for _, last in beats] == [False, False, False, True] * 18


def test_group_major_beats_are_sub_maps_in_raster_order():
    frame = np.arange(2 * 1 * 4).reshape(1, 1, 2, 4)     # one row, two pixels, 4 channels
    beats = pixel_beats(frame, lanes_in=2, abits=4, order_in="group-major", groups_in=2)
    # sub-map 0: channels (0, 1) of pixel 0 then pixel 1; sub-map 1: channels (2, 3)
    assert [d for d, _ in beats] == [0x10, 0x54, 0x32, 0x76]


# ------------------------------------------------------------------ CLI and parameters

@pytest.mark.parametrize("flags,message", [
    (["--simd", "3"], "--simd: must divide channels (8), got 3"),
    (["--lanes-in", "8", "--order-in", "group-major", "--groups-in", "2"],
     "--lanes-in: must divide the channels of a sub-map (channels/groups_in = 4), got 8"),
    (["--groups-in", "2"], "--groups-in: must be 1 for a raster input, got 2"),
    (["--channels", "12", "--simd", "4", "--lanes-in", "6"],
     "--lanes-in: must divide simd (4) or be a multiple of it, got 6"),
    (["--buffers", "3"], "--buffers: must be an integer in 1..2, got 3"),
    (["--order-in", "column"], "--order-in: invalid choice: 'column'"),
    (["--k", "3", "--pad", "3"], "--pad: must be less than k (3), got 3"),
])
def test_cli_rejects_impossible_parameters_in_one_line(cli_rejects, flags, message):
    defaults = {"--width": "4", "--height": "4", "--channels": "8", "--k": "3", "--pad": "1",
                "--abits": "4", "--simd": "2", "--lanes-in": "2"}
    cli_rejects("frame_buffer", defaults, flags, message)


def test_block_function_validates_its_parameters():
    params = geometry(4, 4, 4, 3, 1, 1, 4, 2, 2)
    ports = BLOCK.ports(**params)
    with pytest.raises(ParameterError, match=r"^pad: must be less than k"):
        BLOCK.build(**ports, **{**params, "pad": 3})
    with pytest.raises(ParameterError, match=r"^s_axis_px.tdata: is 8 bits wide, expected 16"):
        BLOCK.build(**ports, **{**params, "lanes_in": 4})
    with pytest.raises(ParameterError, match=r"^channels: .* words exceeds 262144"):
        BLOCK.validate(**geometry(256, 256, 64, 3, 1, 1, 8, 8, 8))
