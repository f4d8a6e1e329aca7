import json
import re
import subprocess

import numpy as np
import pytest

from blocks.line_buffer import BLOCK, decide_lag, golden, pixel_beats, read_stages
from blocks.spec import ParameterError
from cnn_ip.cli import main
from cnn_ip.cosim import lint, run_streams
from cnn_ip.export import generate
from window_frames import random_frames


def geometry(width, height, channels, k, stride, pad, abits, simd, repeat=1):
    return dict(width=width, height=height, channels=channels, k=k, stride=stride, pad=pad,
                abits=abits, simd=simd, repeat=repeat)


def ident(p):
    return (f"W{p['width']}H{p['height']}C{p['channels']}K{p['k']}s{p['stride']}P{p['pad']}"
            f"A{p['abits']}S{p['simd']}R{p.get('repeat', 1)}")


def stages(p):
    """Register stages of the ring's read (2: LUT RAM in banks, ``banked_ram``)."""
    return read_stages(p["simd"] * p["abits"], (p["k"] + p["stride"]) * p["width"]
                       * p["channels"] // p["simd"])


# (geometry, frames, Icarus too): K in {1, 2, 3, 5}, stride 1..4, pad 0..2, W from 1 to
# 300, C/S of 1 and more, A of 1 and 8, repeat, single-window frames, windows that are
# mostly padding; rings in block RAM, in LUT RAM read in one stage and in two.  Every
# geometry runs on the MyHDL model; the converted Verilog runs under Icarus once per
# distinct structure (the suite's time budget).
GEOMETRIES = [
    (geometry(5, 4, 2, 3, 1, 1, 4, 1, repeat=3), 2, True),     # two-stage read, repeat
    (geometry(6, 5, 4, 2, 2, 0, 8, 4, repeat=4), 2, False),
    (geometry(7, 6, 2, 5, 2, 2, 1, 2), 2, True),               # mostly padding, A=1
    (geometry(1, 3, 1, 1, 3, 0, 3, 1, repeat=2), 3, True),     # one column, stride past K
    (geometry(4, 9, 6, 3, 4, 2, 2, 3, repeat=2), 2, False),
    (geometry(1, 4, 3, 3, 1, 1, 5, 1), 2, False),
    (geometry(3, 3, 1, 3, 2, 0, 8, 1), 3, False),              # a single window a frame
    (geometry(9, 5, 4, 5, 1, 1, 6, 2), 2, False),
    (geometry(2, 7, 2, 2, 1, 1, 7, 1), 2, False),
    (geometry(300, 3, 2, 3, 2, 1, 8, 2), 1, True),             # ring in block RAM
]


@pytest.mark.parametrize("params,count,hdl", [
    (p, n, hdl) for p, n, cosim in GEOMETRIES for hdl in ("myhdl", "icarus")[:1 + cosim]],
    ids=[f"{hdl}-{ident(p)}" for p, _, cosim in GEOMETRIES
         for hdl in ("myhdl", "icarus")[:1 + cosim]])
def test_windows_match_golden_model_under_stalls(tmp_path, params, count, hdl):
    seed = sum(params.values())
    frames = random_frames(params, count, seed)
    beats = pixel_beats(frames, simd=params["simd"], abits=params["abits"])
    want = golden(frames, **params)
    out = run_streams(BLOCK, hdl=hdl, workdir=tmp_path, inputs={"s_axis_px": beats},
                      expect={"m_axis_win": len(want)}, idle=0.3, stall=0.4, seed=seed,
                      params=params)
    got = [(b.data, b.last) for b in out["m_axis_win"]]
    assert len(got) == len(want)
    first_bad = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), None)
    assert first_bad is None, f"beat {first_bad}: got {got[first_bad]}, want {want[first_bad]}"


# ------------------------------------------------------------------ timing

def steady_rate(cycles):
    """Beats per cycle over a run of stamps: (beats - 1) / (last - first)."""
    return (len(cycles) - 1) / (cycles[-1] - cycles[0])


# (geometry, frame pause or None when not asserted, Icarus too).  K=3, stride 1, H=5, W=8,
# G=2, pad 0: the last output row holds rows 2..4, leaving one of the 4 slots; the next
# frame's first window needs rows 0, 1 and 3 pixels of row 2, so it waits for row 1
# (W*G = 16 cycles) and 3 pixels of row 2 (6), and two cycles to decide the window ready
# (its 18 beats: the registered decision): 24.  Pad 1: the last output row holds rows
# 3..4, the two free slots take rows 0 and 1: no pause.
TIMING = [
    (geometry(12, 7, 8, 3, 1, 1, 4, 4), 0, True),              # output bound, two stages
    (geometry(12, 7, 8, 3, 2, 1, 4, 4, repeat=2), None, False),  # stride 2, repeat
    (geometry(8, 5, 4, 3, 1, 0, 3, 2), 24, False),             # a frame pause
    (geometry(8, 5, 2, 3, 2, 0, 8, 1, repeat=4), None, False),  # repeat and a pause
    (geometry(8, 6, 2, 1, 2, 0, 3, 2), None, True),            # input bound, one stage
    (geometry(5, 6, 1, 2, 2, 0, 8, 1), None, False),           # one-beat windows (lag 1)
    (geometry(6, 6, 1, 2, 1, 0, 8, 1), None, False),
    # the first window runs past the map (found by an independent latency check): past
    # its only row; past its width, with a pause; past both; past the width, G = 4
    (geometry(6, 1, 1, 3, 1, 1, 1, 1), None, True),
    (geometry(3, 5, 1, 5, 1, 1, 1, 1), 8, True),
    (geometry(3, 2, 8, 4, 1, 1, 1, 2), None, False),
    (geometry(5, 9, 8, 7, 1, 1, 2, 4), None, False),
]


@pytest.mark.parametrize("params,pause,hdl", [
    (p, gap, hdl) for p, gap, cosim in TIMING for hdl in ("myhdl", "icarus")[:1 + cosim]],
    ids=[f"{hdl}-{ident(p)}" for p, _, cosim in TIMING
         for hdl in ("myhdl", "icarus")[:1 + cosim]])
def test_rate_latency_and_frame_pause_are_as_documented(tmp_path, params, pause, hdl):
    # Three frames back to back, no stalls.
    frames = random_frames(params, 3, 7)
    beats = pixel_beats(frames, simd=params["simd"], abits=params["abits"])
    want = golden(frames, **params)
    out = run_streams(BLOCK, hdl=hdl, workdir=tmp_path, inputs={"s_axis_px": beats},
                      expect={"m_axis_win": len(want)}, drain=10, params=params)
    accepted = [b.cycle for b in out["s_axis_px"]]
    received = out["m_axis_win"]
    assert [(b.data, b.last) for b in received] == want
    est = BLOCK.estimate(**params)
    k, pad, width, stride = params["k"], params["pad"], params["width"], params["stride"]
    groups = params["channels"] // params["simd"]
    per_frame = len(received) // 3
    # Latency: the decision lag after the last group of pixel (K-1-P, K-1-P) moved in,
    # then the ring's read stages.
    assert received[0].cycle - accepted[0] == est["latency"]
    row, col = min(k - 1 - pad, params["height"] - 1), min(k - 1 - pad, width - 1)
    last_needed = (row * width + col + 1) * groups - 1
    lag = decide_lag(k, groups, params["repeat"])
    assert received[0].cycle - accepted[last_needed] == 1 + lag + stages(params)
    # Frames 2 and 3 start exactly `cycles` apart, the frame pause included.
    assert est["per"] == "frame"
    assert received[2 * per_frame].cycle - received[per_frame].cycle == est["cycles"]
    if per_frame + est["pause"] >= params["height"] * width * groups:
        # Output bound: the output pauses between frames as documented; every output
        # row after the first goes out gap-free, and the input is only held back by the
        # ring being full: beats arrive at one a cycle until the writer is stride rows
        # ahead.
        gap = received[per_frame].cycle - received[per_frame - 1].cycle - 1
        assert gap == est["pause"] == (est["pause"] if pause is None else pause)
        out_rows = (params["height"] + 2 * pad - k) // stride + 1
        row = per_frame // out_rows
        if out_rows > 1:
            assert steady_rate([b.cycle for b in received[row:per_frame]]) == 1.0
        ahead = min((k - 1 + stride) * width * groups, len(accepted) - 1)
        assert accepted[ahead] - accepted[0] == ahead
    else:
        # Input bound: one pixel group a cycle throughout.
        assert pause is None
        assert accepted[-1] - accepted[0] == len(accepted) - 1
    # Each copy of a window is read again from the ring: no second copy stored.
    assert (est["bram_bits"] == (k + stride) * width * params["channels"] * params["abits"])


# ------------------------------------------------------------------ structure

def memory_bits(verilog_text):
    """Total bits of every `reg [msb:lsb] name [0:depth-1];` memory in the Verilog."""
    total = 0
    for msb, lsb, lo, hi in re.findall(
            r"reg\s*\[(\d+):(\d+)\]\s*\w+\s*\[(\d+):(\d+)(?:-1)?\]", verilog_text):
        depth_text = re.search(rf"\[{lo}:{hi}(-1)?\]", verilog_text).group(0)
        depth = int(hi) - int(lo) + (0 if depth_text.endswith("-1]") else 1)
        total += (int(msb) - int(lsb) + 1) * depth
    return total


@pytest.mark.parametrize("params", [BLOCK.example(), geometry(1, 1, 1, 1, 4, 0, 1, 1),
                                    geometry(416, 8, 16, 3, 1, 1, 8, 16),
                                    geometry(30, 8, 6, 5, 3, 2, 1, 3),
                                    # once flagged WIDTH: windows wider than the frame,
                                    # large pads, strides past the window
                                    geometry(1, 1, 3, 6, 3, 3, 8, 1),
                                    geometry(8, 16, 3, 7, 1, 4, 3, 3),
                                    geometry(8, 4, 4, 5, 3, 1, 4, 2),
                                    geometry(3, 2, 1, 7, 4, 3, 1, 1)], ids=ident)
def test_lint_clean_and_ring_is_the_declared_memory(tmp_path, params):
    generate(BLOCK, tmp_path, **params)
    lint(tmp_path / "line_buffer.v", "line_buffer", BLOCK.lint_waivers)
    bits = memory_bits((tmp_path / "line_buffer.v").read_text())
    assert bits == BLOCK.estimate(**params)["bram_bits"]
    rows = params["k"] + params["stride"]
    assert bits == rows * params["width"] * params["channels"] * params["abits"]


def test_ring_maps_to_block_ram(tmp_path):
    params = geometry(128, 16, 8, 3, 1, 1, 8, 8)
    generate(BLOCK, tmp_path, **params)
    result = subprocess.run(["yosys", "-q", "-p", "read_verilog line_buffer.v; "
                             "synth_ecp5 -top line_buffer; tee -o stat.txt stat"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    stat = (tmp_path / "stat.txt").read_text()
    cells = dict(re.findall(r"^\s+(\w+)\s+(\d+)$", stat, flags=re.M))
    assert int(cells.get("DP16KD", 0)) >= 1
    # The 32 kbit ring is not in flip-flops (the control, timing registers included, is
    # some 260).
    assert int(cells["TRELLIS_FF"]) < 400
# ------------------------------------------------------------------ golden model

def test_golden_model_on_a_hand_worked_example():
    # 2x2 frame, one channel, K=2, pad 1, stride 1: 3x3 windows over
    #   0 0 0 0
    #   0 1 2 0
    #   0 3 4 0
    #   0 0 0 0
    frame = np.array([[[1], [2]], [[3], [4]]])
    beats = golden(frame[None], width=2, height=2, channels=1, k=2, stride=1, pad=1,
                   abits=3, simd=1)
    windows = [[d for d, _ in beats[i:i + 4]] for i in range(0, len(beats), 4)]
    assert windows == [[0, 0, 0, 1], [0, 0, 1, 2], [0, 0, 2, 0],
                       [0, 1, 0, 3], [1, 2, 3, 4], [2, 0, 4, 0],
                       [0, 3, 0, 0], [3, 4, 0, 0], [4, 0, 0, 0]]
    assert [last for _, last in beats] == [False, False, False, True] * 9


def test_golden_model_packs_lanes_little_endian_in_ky_kx_group_order():
    frame = np.arange(1 * 2 * 4).reshape(1, 1, 2, 4)     # one row, two pixels, 4 channels
    beats = golden(frame, width=2, height=1, channels=4, k=1, stride=1, pad=0, abits=4,
                   simd=2)
    # pixel 0 channels (0, 1) then (2, 3); pixel 1 channels (4, 5) then (6, 7)
    assert [d for d, _ in beats] == [0x10, 0x32, 0x54, 0x76]
    assert [last for _, last in beats] == [False, True, False, True]


# ------------------------------------------------------------------ CLI and parameters

def test_cli_writes_verilog_and_sidecar_with_contract_ports(tmp_path):
    argv = ["block", "line_buffer", "--width", "13", "--height", "9", "--channels", "8",
            "--k", "3", "--stride", "1", "--pad", "1", "--abits", "4", "--simd", "4",
            "-o", str(tmp_path)]
    assert main(argv) == 0
    assert "module line_buffer" in (tmp_path / "line_buffer.v").read_text()
    info = json.loads((tmp_path / "line_buffer.json").read_text())
    ports = {p["name"]: (p["direction"], p["width"]) for p in info["ports"]}
    assert ports == {
        "aclk": ("input", 1), "aresetn": ("input", 1),
        "s_axis_px_tdata": ("input", 16), "s_axis_px_tvalid": ("input", 1),
        "s_axis_px_tready": ("output", 1),
        "m_axis_win_tdata": ("output", 16), "m_axis_win_tvalid": ("output", 1),
        "m_axis_win_tready": ("input", 1), "m_axis_win_tlast": ("output", 1),
    }
    assert info["derived"]["out_width"] == 13 and info["derived"]["out_height"] == 9
    assert info["estimate"]["bram_bits"] == 4 * 13 * 8 * 4


@pytest.mark.parametrize("flags,message", [
    (["--height", "2", "--k", "5", "--pad", "1"], "--k: must be at most height + 2*pad = 4, got 5"),
    (["--width", "2", "--k", "5", "--pad", "1"], "--k: must be at most width + 2*pad = 4, got 5"),
    (["--channels", "6", "--simd", "4"], "--simd: must divide channels (6), got 4"),
    (["--k", "3", "--pad", "3"], "--pad: must be less than k (3), got 3"),
    (["--k", "8"], "--k: must be an integer in 1..7, got 8"),
    (["--stride", "5"], "--stride: must be an integer in 1..4, got 5"),
    (["--abits", "9"], "--abits: must be an integer in 1..8, got 9"),
])
def test_cli_rejects_impossible_geometry_in_one_line(cli_rejects, flags, message):
    defaults = {"--width": "8", "--height": "8", "--channels": "4", "--k": "3", "--pad": "1",
                "--abits": "4", "--simd": "2"}
    cli_rejects("line_buffer", defaults, flags, message)


def test_block_function_validates_its_parameters():
    ports = BLOCK.ports(**geometry(4, 4, 2, 3, 1, 1, 4, 1))
    with pytest.raises(ParameterError, match=r"^pad: must be less than k"):
        BLOCK.build(**ports, **geometry(4, 4, 2, 3, 1, 3, 4, 1))
    with pytest.raises(ParameterError, match=r"^s_axis_px.tdata: is 4 bits wide, expected 8"):
        BLOCK.build(**ports, **geometry(4, 4, 2, 3, 1, 1, 4, 2))


def test_rejects_a_ring_too_deep_to_build():
    with pytest.raises(ParameterError, match=r"^width: buffer of .* words exceeds 262144"):
        BLOCK.validate(**geometry(4096, 8, 64, 3, 1, 1, 8, 1))
