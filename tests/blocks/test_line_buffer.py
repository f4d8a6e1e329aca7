import json
import re
import subprocess

import numpy as np
import pytest

from blocks.line_buffer import BLOCK, golden, out_size, pixel_beats
from blocks.spec import ParameterError
from cnn_ip.cli import main
from cnn_ip.cosim import lint, run_streams
from cnn_ip.export import generate
from window_frames import random_frames


def geometry(width, height, channels, k, stride, pad, abits, simd, repeat=1):
    return dict(width=width, height=height, channels=channels, k=k, stride=stride, pad=pad,
                abits=abits, simd=simd, repeat=repeat)


# (geometry, frames): K in {1, 2, 3, 5}, stride 1..4, pad 0..2, W from 1 to 300,
# C/S of 1 and more, A of 1 and 8, single-window frames, windows that are mostly padding.
GEOMETRIES = [
    (geometry(5, 4, 2, 3, 1, 1, 4, 1), 3),
    (geometry(6, 5, 4, 2, 2, 0, 8, 4), 2),
    (geometry(7, 6, 2, 5, 2, 2, 1, 2), 2),
    (geometry(1, 3, 1, 1, 3, 0, 3, 1), 3),
    (geometry(4, 9, 6, 3, 4, 2, 2, 3), 2),
    (geometry(1, 4, 3, 3, 1, 1, 5, 1), 2),
    (geometry(3, 3, 1, 3, 2, 0, 8, 1), 3),
    (geometry(9, 5, 4, 5, 1, 1, 6, 2), 2),
    (geometry(2, 7, 2, 2, 1, 1, 7, 1), 2),
    (geometry(300, 3, 2, 3, 2, 1, 8, 2), 1),
    # repeat: each window read again from the ring, back to back
    (geometry(5, 4, 2, 3, 1, 1, 4, 1, repeat=3), 2),
    (geometry(1, 3, 1, 1, 3, 0, 3, 1, repeat=2), 3),
    (geometry(6, 5, 4, 2, 2, 0, 8, 4, repeat=4), 2),
    (geometry(4, 9, 6, 3, 4, 2, 2, 3, repeat=2), 2),
]


@pytest.mark.parametrize("params,count", GEOMETRIES,
                         ids=[f"W{p['width']}H{p['height']}C{p['channels']}K{p['k']}"
                              f"s{p['stride']}P{p['pad']}A{p['abits']}S{p['simd']}"
                              f"R{p['repeat']}" for p, _ in GEOMETRIES])
def test_windows_match_golden_model_under_stalls(hdl, tmp_path, params, count):
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

def run_timed(hdl, workdir, params, frames):
    """Return (input beat cycles, output Beats), both stamped on the same clock; no stalls."""
    beats = pixel_beats(frames, simd=params["simd"], abits=params["abits"])
    out = run_streams(BLOCK, hdl=hdl, workdir=workdir, inputs={"s_axis_px": beats},
                      expect={"m_axis_win": len(golden(frames, **params))}, drain=10, params=params)
    return [b.cycle for b in out["s_axis_px"]], out["m_axis_win"]


def steady_rate(cycles):
    """Beats per cycle over a run of stamps: (beats - 1) / (last - first)."""
    return (len(cycles) - 1) / (cycles[-1] - cycles[0])


@pytest.mark.parametrize("stride", [1, 2])
def test_k3_emits_one_window_beat_per_cycle_in_steady_state(hdl, tmp_path, stride):
    params = geometry(12, 7, 8, 3, stride, 1, 4, 4)
    frames = random_frames(params, 1, stride)
    accepted, received = run_timed(hdl, tmp_path, params, frames)
    assert [(b.data, b.last) for b in received] == golden(frames, **params)
    ow = out_size(params["width"], 3, stride, 1)
    per_row = ow * 9 * 2
    # Steady state: every output row after the first; the whole interior is gap-free.
    cycles = [b.cycle for b in received][per_row:]
    assert steady_rate(cycles) == 1.0
    # The input is only held back by the ring being full, never by an idle reader:
    # beats arrive at 1/cycle until the writer is stride rows ahead.
    ahead = (3 - 1 + stride) * params["width"] * 2
    assert accepted[ahead] - accepted[0] == ahead


def test_input_bound_geometry_accepts_one_pixel_per_cycle(hdl, tmp_path):
    # K=1, stride 2: one window beat per four input beats, so the input sets the pace.
    params = geometry(8, 6, 2, 1, 2, 0, 3, 2)
    frames = random_frames(params, 2, 5)
    accepted, received = run_timed(hdl, tmp_path, params, frames)
    assert [(b.data, b.last) for b in received] == golden(frames, **params)
    assert accepted[-1] - accepted[0] == len(accepted) - 1


@pytest.mark.parametrize("params", [geometry(6, 5, 4, 3, 1, 1, 2, 2),
                                    geometry(5, 6, 1, 2, 2, 0, 8, 1)])
def test_latency_is_as_documented(hdl, tmp_path, params):
    frames = random_frames(params, 1, 3)
    accepted, received = run_timed(hdl, tmp_path, params, frames)
    latency = received[0].cycle - accepted[0]
    assert latency == BLOCK.estimate(**params)["latency"]
    k, pad, width = params["k"], params["pad"], params["width"]
    groups = params["channels"] // params["simd"]
    # Three cycles after the last group of pixel (K-1-P, K-1-P) moved in (counted, the
    # window decided ready, the RAM read), four when the decision is registered twice
    # (windows of four or more beats).
    last_needed = ((k - 1 - pad) * width + (k - 1 - pad) + 1) * groups - 1
    lag = 2 if k * k * groups * params["repeat"] >= 4 else 1
    assert received[0].cycle - accepted[last_needed] == 2 + lag


@pytest.mark.parametrize("pad,gap", [
    # K=3, stride 1, H=5, W=8, G=2.  pad 0: the last output row holds rows 2..4, leaving
    # one of the 4 slots; the next frame's first window needs rows 0, 1 and 3 pixels of
    # row 2, so it waits for row 1 (W*G = 16 cycles) and 3 pixels of row 2 (6), and two
    # cycles to decide the window ready (its 18 beats: the registered decision): 24.
    # pad 1: the last output row holds rows 3..4, the two free slots take rows 0 and 1.
    (0, 24), (1, 0)])
def test_pause_between_frames_is_as_documented(hdl, tmp_path, pad, gap):
    params = geometry(8, 5, 4, 3, 1, pad, 3, 2)
    frames = random_frames(params, 2, pad)
    accepted, received = run_timed(hdl, tmp_path, params, frames)
    assert [(b.data, b.last) for b in received] == golden(frames, **params)
    per_frame = len(received) // 2
    assert received[per_frame].cycle - received[per_frame - 1].cycle - 1 == gap


@pytest.mark.parametrize("params", [
    geometry(8, 5, 4, 3, 1, 0, 3, 2),             # output bound, with a frame pause
    geometry(5, 4, 2, 3, 1, 1, 4, 1, repeat=3),   # repeat, no pause
    geometry(8, 5, 2, 3, 2, 0, 8, 1, repeat=4),   # repeat and a pause
    geometry(8, 6, 2, 1, 2, 0, 3, 2),             # input bound
    geometry(6, 6, 1, 2, 1, 0, 8, 1)])
def test_cycles_per_frame_are_as_estimated(hdl, tmp_path, params):
    # Three frames back to back, no stalls: the second and third start exactly
    # `cycles` apart (the frame pause included).
    frames = random_frames(params, 3, 7)
    accepted, received = run_timed(hdl, tmp_path, params, frames)
    assert [(b.data, b.last) for b in received] == golden(frames, **params)
    per_frame = len(received) // 3
    spacing = received[2 * per_frame].cycle - received[per_frame].cycle
    assert spacing == BLOCK.estimate(**params)["cycles"]
    assert BLOCK.estimate(**params)["per"] == "frame"


def test_repeat_reads_each_window_again_at_one_beat_per_cycle(hdl, tmp_path):
    params = geometry(12, 7, 8, 3, 1, 1, 4, 4, repeat=2)
    frames = random_frames(params, 1, 9)
    accepted, received = run_timed(hdl, tmp_path, params, frames)
    assert [(b.data, b.last) for b in received] == golden(frames, **params)
    per_row = 12 * 9 * 2 * 2
    assert steady_rate([b.cycle for b in received][per_row:]) == 1.0
    # The ring is the same as without repeat: no second copy of a window.
    assert (BLOCK.estimate(**params)["bram_bits"]
            == BLOCK.estimate(**{**params, "repeat": 1})["bram_bits"])


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


@pytest.mark.parametrize("params", [BLOCK.example(), geometry(416, 416, 16, 3, 1, 1, 8, 16),
                                    geometry(30, 8, 6, 5, 3, 2, 1, 3)])
def test_buffer_bits_estimate_matches_memory_declaration(tmp_path, params):
    generate(BLOCK, tmp_path, **params)
    bits = memory_bits((tmp_path / "line_buffer.v").read_text())
    assert bits == BLOCK.estimate(**params)["bram_bits"]
    rows = params["k"] + params["stride"]
    assert bits == rows * params["width"] * params["channels"] * params["abits"]


@pytest.mark.parametrize("params", [BLOCK.example(), geometry(1, 1, 1, 1, 4, 0, 1, 1),
                                    geometry(416, 8, 16, 3, 1, 1, 8, 16),
                                    geometry(7, 6, 2, 5, 2, 2, 1, 2),
                                    # once flagged WIDTH: windows wider than the frame,
                                    # large pads, strides past the window
                                    geometry(1, 1, 3, 6, 3, 3, 8, 1),
                                    geometry(8, 16, 3, 7, 1, 4, 3, 3),
                                    geometry(8, 4, 4, 5, 3, 1, 4, 2),
                                    geometry(3, 2, 1, 7, 4, 3, 1, 1)])
def test_lint_clean(tmp_path, params):
    generate(BLOCK, tmp_path, **params)
    lint(tmp_path / "line_buffer.v", "line_buffer", BLOCK.lint_waivers)


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
