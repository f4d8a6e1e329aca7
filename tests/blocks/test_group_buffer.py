"""Tests of ``group_buffer``: fetch commands gated by ``start``, the gearbox from bus
beats to words, two banks, replay.

The bench models ``tile_dma`` from its golden model: it accepts read commands with random
``tready``, looks the tile up in a memory holding the group images (written by
``quant.offchip.words_to_bytes``), and sends its beats with random idle cycles.  The
words expected are the random words the images were made of, replayed.
"""
from __future__ import annotations

import json
import random
import re
from collections import deque

import numpy as np
import pytest
from myhdl import StopSimulation, block, instance, now

from blocks.group_buffer import BLOCK, COMMAND_LATENCY, LATENCY, golden
from blocks.spec import ParameterError
from blocks.tile_dma import encode_command
from blocks.tile_dma import golden as dma_golden
from cnn_ip.cosim import dut, lint
from cnn_ip.export import generate
from cnn_ip.simkit import PERIOD, axis_monitor, axis_sink, clock_reset_driver
from quant.offchip import beat_bytes, fetch_rows, group_images, layout, words_to_bytes

BASE = 0x4000          # where the test memory starts


class Layer:
    """Random group images of ``depths`` words laid out like ``quant.offchip.layout``:
    64-byte aligned, whole bus beats, plus ``extra`` padding beats per group."""

    def __init__(self, *, word_bits, bus_bits, depths, seed, extra=0, extremes=False):
        rng = random.Random(seed)
        lanes = bus_bits // 8
        self.word_bits, self.bus_bits, self.depths = word_bits, bus_bits, list(depths)
        top = (1 << word_bits) - 1
        self.images, self.groups = [], []
        image, address = bytearray(), BASE
        for g, depth in enumerate(depths):
            if extremes and g % 2:
                words = [top if k % 2 else 0 for k in range(depth)]
            else:
                words = [rng.getrandbits(word_bits) for _ in range(depth)]
            size = beat_bytes(depth * word_bits + extra * bus_bits, lanes)
            self.images.append(words)
            self.groups.append((address, size))
            image += words_to_bytes(words, word_bits, size)
            pad = -len(image) % 64
            image += bytes(pad)
            address = BASE + len(image)
        self.memory = np.frombuffer(bytes(image) + bytes(64), dtype=np.uint8)

    def params(self, passes, **more):
        return {"word_bits": self.word_bits, "bus_bits": self.bus_bits,
                "groups": json.dumps(self.groups), "depths": json.dumps(self.depths),
                "passes": passes, **more}

    def commands(self):
        """Each group's command as the interface states it: its address, rows of
        ``fetch_rows``, stride = row bytes."""
        out = []
        for address, size in self.groups:
            width, rows = fetch_rows(size, self.bus_bits // 8)
            assert width * rows == size
            out.append(encode_command(base=address, stride=width, row_bytes=width, rows=rows))
        return out

    def words(self, passes, frames):
        """``m_axis_words`` beats expected for ``frames`` frames."""
        one = [(w, k == len(image) - 1) for image in self.images for _ in range(passes)
               for k, w in enumerate(image)]
        return one * frames

    def tile(self, command):
        """The beats ``tile_dma`` sends for ``command``."""
        out = dma_golden(self.memory, [("read", command)], data_bits=self.bus_bits,
                         base_address=BASE)
        assert not out["error"]
        return out["reads"][0]


@block
def dma_model(aclk, aresetn, cmd, fill, layer, accepted, moved, *, seed, cmd_stall, idle):
    """``tile_dma`` as the buffer sees it: commands in, their tiles out in order."""
    rng = random.Random(seed)

    @instance
    def run():
        queue = deque()
        cmd.tready.next = 0
        fill.tvalid.next = 0
        while True:
            yield aclk.posedge
            if not aresetn:
                continue
            if cmd.tvalid and cmd.tready:
                accepted.append((int(cmd.tdata), now() // PERIOD))
                queue.extend(layer.tile(int(cmd.tdata)))
            cmd.tready.next = rng.random() >= cmd_stall
            if fill.tvalid:
                if not fill.tready:
                    continue
                moved.append((now() // PERIOD, queue.popleft()[1]))
            if queue and rng.random() >= idle:
                fill.tdata.next, fill.tlast.next = queue[0]
                fill.tvalid.next = 1
            else:
                fill.tvalid.next = 0

    return run


def run(layer, *, passes, hdl, workdir, starts, frames, seed=0, idle=0.0, stall=0.0,
        cmd_stall=0.0, drain=60, max_cycles=60_000, target="generic"):
    """Pulse ``start`` at the cycles ``starts``; return the commands (word, cycle accepted),
    the cycles ``tvalid`` rose on the command stream, and the words received."""
    params = layer.params(passes, target=target)
    _, args = BLOCK.prepared(**params)
    ports = BLOCK.ports(**args)
    aclk, aresetn, start = ports["aclk"], ports["aresetn"], ports["start"]
    cmd, words = ports["m_axis_rdcmd"], ports["m_axis_words"]
    want = len(layer.words(passes, frames))
    got, accepted, raised, errors, moved, pulses = [], [], [], [], [], []
    state = {}

    @block
    def bench():
        parts = [clock_reset_driver(aclk, aresetn),
                 dut(BLOCK, ports, hdl=hdl, args=args, workdir=workdir),
                 dma_model(aclk, aresetn, cmd, ports["s_axis_fill"], layer, accepted, moved,
                           seed=seed, cmd_stall=cmd_stall, idle=idle),
                 axis_sink(aclk, aresetn, words, got, seed=seed + 1, stall=stall)]
        parts += [axis_monitor(aclk, aresetn, ports[name], errors, label=name)
                  for name in ("m_axis_rdcmd", "s_axis_fill", "m_axis_words")]

        @instance
        def control():
            was_valid, done_at = False, None
            for cycle in range(max_cycles):
                start.next = cycle in starts
                yield aclk.posedge
                if start:
                    pulses.append(now() // PERIOD)
                if cmd.tvalid and not was_valid:
                    raised.append(now() // PERIOD)
                was_valid = bool(cmd.tvalid)
                if done_at is None and len(got) >= want:
                    done_at = cycle
                if done_at is not None and cycle - done_at >= drain:
                    state["cycles"] = cycle
                    break
            raise StopSimulation

        return parts, control

    bench().run_sim(quiet=True)
    assert "cycles" in state, f"timeout: {len(got)} of {want} words, {len(accepted)} commands"
    assert not errors, errors[:3]
    return {"words": got, "commands": accepted, "raised": raised, "fill": moved,
            "starts": pulses}


def check_words(layer, out, passes, frames):
    want = layer.words(passes, frames)
    got = [(b.data, b.last) for b in out["words"]]
    bad = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
    assert bad is None, f"word {bad}: got {got[bad]}, want {want[bad]}"
    assert len(got) == len(want)
    fills = [[d for d, _ in layer.tile(c)] for c in layer.commands()]
    assert golden(fills, **layer.params(passes), frames=frames) == want


# (word_bits, bus_bits, depths, extra padding beats): words below, equal to a divisor of,
# and above the bus width; one-word groups; groups much longer than a beat.
CASES = [
    (72, 64, [1, 9, 20], 0),
    (20, 32, [5, 17, 1, 12], 1),
    (16, 64, [7, 30], 2),
    (128, 64, [3, 1], 0),
    (200, 128, [2, 5, 1], 1),
    (1, 32, [40, 3], 0),
    (24, 64, [11], 0),          # one group: fetched again each frame, banks alternating
]
IDS = [f"w{w}-b{b}-g{len(d)}" for w, b, d, _ in CASES]


def on_both(cases, ids, icarus):
    """Every case on the MyHDL model; those named in ``icarus`` also on the converted
    Verilog (one Icarus run per distinct structure keeps the suite's time down)."""
    return [pytest.param(*case, hdl, id=f"{hdl}-{name}") for case, name in zip(cases, ids)
            for hdl in ("myhdl", "icarus") if hdl == "myhdl" or name in icarus]


# In Icarus: the example's shape (a word over a beat), one-bit words (the largest gearbox
# table) and a single group (the tables become constants).
@pytest.mark.parametrize("word_bits,bus_bits,depths,extra,hdl",
                         on_both(CASES, IDS, {"w72-b64-g3", "w1-b32-g2", "w24-b64-g1"}))
def test_words_match_golden_under_stalls(tmp_path, word_bits, bus_bits, depths, extra, hdl):
    seed = word_bits + bus_bits + len(depths)
    layer = Layer(word_bits=word_bits, bus_bits=bus_bits, depths=depths, seed=seed,
                  extra=extra, extremes=True)
    passes, frames = 2, 3
    out = run(layer, passes=passes, hdl=hdl, workdir=tmp_path, starts={5, 9, 300},
              frames=frames, seed=seed, idle=0.3, stall=0.4, cmd_stall=0.5)
    check_words(layer, out, passes, frames)
    # Exactly G commands a permit, in group order, each the group's one command.
    assert [c for c, _ in out["commands"]] == layer.commands() * frames


def test_a_group_of_two_dma_rows_and_many_padding_beats(tmp_path):
    # 65616 bytes: beyond one row's 65535, so the command has 2 rows of 32808 bytes; the
    # gearbox keeps the first 3 words (4 beats) and drops the other 8198 beats (8199
    # after the 2-word group).
    layer = Layer(word_bits=72, bus_bits=64, depths=[3, 2], seed=8, extra=8198)
    assert [fetch_rows(size, 8) for _, size in layer.groups] == [(32808, 2)] * 2
    out = run(layer, passes=2, hdl="myhdl", workdir=tmp_path, starts={3}, frames=1, seed=8,
              idle=0.1, stall=0.3)
    check_words(layer, out, 2, 1)
    assert [c for c, _ in out["commands"]] == layer.commands()


class ShortLayer(Layer):
    """A memory whose group 1 ends (tlast) two beats early, before its last words."""

    def tile(self, command):
        beats = super().tile(command)
        if command == self.commands()[1]:
            beats = beats[:-3] + [(beats[-3][0], True)]
        return beats


def test_a_group_cut_short_ends_at_its_tlast(tmp_path):
    # Nothing hangs: the short group is replayed (its missing words are undefined), the
    # others are exact, and the next frame follows.
    layer = ShortLayer(word_bits=40, bus_bits=32, depths=[4, 9, 5], seed=2)
    out = run(layer, passes=2, hdl="myhdl", workdir=tmp_path, starts={3, 4}, frames=2,
              seed=2, idle=0.2, stall=0.2)
    want = layer.words(2, 2)
    got = [(b.data, b.last) for b in out["words"]]
    assert len(got) == len(want)
    short = range(2 * 4, 2 * 4 + 2 * 9)
    frame = len(want) // 2
    for i, (a, b) in enumerate(zip(got, want)):
        if i % frame not in short:
            assert a == b, i
    assert [last for _, last in got] == [last for _, last in want]


class OffchipLayer(Layer):
    """A real layer's group images, laid out by ``quant.offchip.layout`` (what
    weights.bin and memory_map.json hold)."""

    def __init__(self, W, *, weights, lanes, simd, bus_bits):
        images = group_images(W, weights=weights, lanes=lanes, simd=simd)
        data, memory_map = layout([({"name": "c", "W": W, "weights": weights}, lanes, simd)],
                                  base=BASE, bus_bytes=bus_bits // 8)
        self.word_bits, self.bus_bits = images[0].word_bits, bus_bits
        self.images = [[int(w) for w in image.words] for image in images]
        self.depths = [len(words) for words in self.images]
        self.groups = [(BASE + offset, size)
                       for offset, size in memory_map["layers"]["c"]["groups"]]
        self.memory = np.frombuffer(data + bytes(64), dtype=np.uint8)


@pytest.mark.parametrize("weights,bus_bits,hdl", on_both(
    [("ternary", 64), ("int4", 32)], ["ternary-64", "int4-32"], {"ternary-64"}))
def test_group_images_of_a_real_layer_from_its_memory_map(tmp_path, weights, bus_bits, hdl):
    # Words out = quant.offchip.group_images(W)[g].words, fetched from layout()'s image.
    rng = np.random.default_rng(5)
    low, high = (-1, 2) if weights == "ternary" else (-8, 8)
    W = rng.integers(low, high, size=(12, 72)) * (rng.random((12, 72)) < 0.4)
    layer = OffchipLayer(W, weights=weights, lanes=4, simd=8, bus_bits=bus_bits)
    out = run(layer, passes=2, hdl=hdl, workdir=tmp_path, starts={3, 40}, frames=2, seed=5,
              idle=0.3, stall=0.3, cmd_stall=0.3)
    check_words(layer, out, 2, 2)


def test_commands_wait_for_permits(tmp_path):
    layer = Layer(word_bits=24, bus_bits=64, depths=[4, 6, 3], seed=3)
    starts = [40, 400]
    out = run(layer, passes=3, hdl="myhdl", workdir=tmp_path, starts=set(starts), frames=2,
              drain=300, seed=4, cmd_stall=0.3, idle=0.2)
    check_words(layer, out, 3, 2)
    G = 3
    raised = out["raised"]
    # Nothing before the first permit; frame 1's commands only after the second; none
    # beyond 2 x G in the 300 idle cycles after the last word.
    assert len(raised) == len(out["commands"]) == 2 * G
    for k, cycle in enumerate(raised):
        assert cycle > starts[k // G], (k, cycle)
    assert raised[0] - starts[0] <= 3
    assert raised[G] - starts[1] <= 3


def test_permits_are_counted_not_lost(tmp_path):
    # Three permits in three consecutive cycles before any fetch: three frames.
    layer = Layer(word_bits=40, bus_bits=32, depths=[3, 2], seed=6)
    out = run(layer, passes=2, hdl="myhdl", workdir=tmp_path, starts={4, 5, 6}, frames=3,
              drain=200, seed=7)
    check_words(layer, out, 2, 3)
    assert len(out["commands"]) == 3 * 2


@pytest.mark.parametrize("word_bits,bus_bits,depths,passes,hdl", on_both([
    (72, 64, [30, 25, 28, 22], 3),
    (16, 64, [12, 20, 9], 4),
    (128, 64, [10, 14], 4),
], ["w72-b64", "w16-b64", "w128-b64"], {"w72-b64"}))
def test_replay_is_one_word_a_cycle_once_banks_are_full(tmp_path, word_bits, bus_bits,
                                                        depths, passes, hdl):
    # No stalls, permits for both frames at once: after the first word the output never
    # bubbles, across passes, groups and frames (each next group fills under a replay).
    layer = Layer(word_bits=word_bits, bus_bits=bus_bits, depths=depths, seed=9)
    out = run(layer, passes=passes, hdl=hdl, workdir=tmp_path, starts={3, 4}, frames=2,
              drain=10)
    check_words(layer, out, passes, 2)
    cycles = [b.cycle for b in out["words"]]
    assert cycles[-1] - cycles[0] == len(cycles) - 1
    est = BLOCK.estimate(**BLOCK.prepared(**layer.params(passes))[1])
    assert est["per"] == "frame" and est["cycles"] == len(cycles) // 2


def test_latencies_are_as_documented(tmp_path):
    # No stalls, the converted Verilog: start -> command offered, and a group's last fill
    # beat -> its first word.
    hdl = "icarus"
    layer = Layer(word_bits=72, bus_bits=64, depths=[5, 9, 3], seed=3)
    out = run(layer, passes=2, hdl=hdl, workdir=tmp_path, starts={5}, frames=1, drain=10)
    check_words(layer, out, 2, 1)
    assert out["raised"][0] - out["starts"][0] == COMMAND_LATENCY == 2
    fill = out["fill"]
    group_ends = [i for i, (_, last) in enumerate(fill) if last]
    assert out["words"][0].cycle - fill[group_ends[0]][0] == LATENCY == 5
    # group 1 (commanded at once: both banks free) follows 3 cycles after group 0's tlast
    assert fill[group_ends[0] + 1][0] - fill[group_ends[0]][0] == 3
    # a last beat that completes four 16-bit words: three cycles more
    layer = Layer(word_bits=16, bus_bits=64, depths=[8, 3], seed=3)
    out = run(layer, passes=2, hdl=hdl, workdir=tmp_path / "narrow", starts={5}, frames=1,
              drain=10)
    check_words(layer, out, 2, 1)
    first_end = next(cycle for cycle, last in out["fill"] if last)
    assert out["words"][0].cycle - first_end == LATENCY + 3


# ------------------------------------------------------------------ structure

LINT = [BLOCK.example(),
        Layer(word_bits=1, bus_bits=32, depths=[5], seed=1).params(1),
        Layer(word_bits=256, bus_bits=128, depths=[2, 1, 70], seed=1).params(1 << 24),
        Layer(word_bits=36, bus_bits=64, depths=[200, 256], seed=1).params(13,
                                                                           target="ecp5-85f")]


@pytest.mark.parametrize("params", LINT, ids=["example", "one-group", "wide", "ecp5"])
def test_lint_clean_and_memory_is_two_banks(tmp_path, params):
    info = generate(BLOCK, tmp_path, **params)
    assert lint(tmp_path / "group_buffer.v", "group_buffer") == []
    depth = max(json.loads(params["depths"]))
    est = info["estimate"]
    assert est["bram_bits"] == 2 * depth * params["word_bits"]
    text = (tmp_path / "group_buffer.v").read_text()
    if params.get("target") == "ecp5-85f":
        assert len(re.findall(r"^DP16KD ", text, flags=re.M)) == est["bram"]["ecp5"]["DP16KD"]
        assert (tmp_path / "DP16KD_sim.v").exists()
    else:
        banks = re.findall(r"reg \[(\d+):0\] \w+ \[0:(\d+)-1\];", text)
        assert [(int(m) + 1) * int(d) for m, d in banks] == [est["bram_bits"]]


def test_ecp5_banks_in_icarus(tmp_path):
    # DP16KD banks (block RAM, <= 512 words, output register) under the primitive's model.
    layer = Layer(word_bits=36, bus_bits=64, depths=[40, 33], seed=12)
    out = run(layer, passes=2, hdl="icarus", workdir=tmp_path, starts={3, 50}, frames=2,
              seed=12, idle=0.3, stall=0.3, cmd_stall=0.3, target="ecp5-85f")
    check_words(layer, out, 2, 2)


def test_example_estimate_and_parameters_from_python():
    params = BLOCK.example()
    # Tuples from Python give the same block as the JSON text of the command line.
    as_tuples = {**params, "groups": tuple(map(tuple, json.loads(params["groups"]))),
                 "depths": tuple(json.loads(params["depths"]))}
    _, args = BLOCK.prepared(**as_tuples)
    assert args == BLOCK.prepared(**params)[1]
    est = BLOCK.estimate(**args)
    assert est["bram_bits"] == 2 * 112 * 72
    assert est["cycles"] == 9 * (112 + 97 + 105 + 100)


@pytest.mark.parametrize("change,message", [
    ({"depths": "[3, 4]"}, "depths: must have one entry per group (3), got 2"),
    ({"depths": "[3, 0, 4]"}, "depths: must be a list of integers in 1..65536"),
    ({"groups": "[[0, 64], [64]]"}, "groups: each entry must be [address, bytes]"),
    ({"groups": "nope"}, "groups: must be a JSON list"),
    ({"groups": "[[4, 64], [64, 64], [128, 64]]"}, "group 0's address must be a non-negative"),
    ({"groups": "[[0, 60], [64, 64], [128, 64]]"}, "group 0's bytes must be a positive multiple"),
    ({"depths": "[3, 4, 8]"}, "depths: group 2's 8 words of 72 bits do not fit in its 64 bytes"),
    ({"passes": 0}, "passes: must be an integer in 1..16777216"),
    ({"bus_bits": 48}, "bus_bits: must be one of 32, 64, 128"),
])
def test_bad_parameters_are_named(change, message):
    params = {"word_bits": 72, "bus_bits": 64, "groups": "[[0, 64], [64, 64], [128, 64]]",
              "depths": "[3, 4, 5]", "passes": 2, **change}
    with pytest.raises(ParameterError, match=re.escape(message)):
        BLOCK.prepared(**params)


def test_cli_writes_verilog_and_sidecar(tmp_path):
    from cnn_ip.cli import main
    argv = ["block", "group_buffer", "--word-bits", "72", "--groups", "[[4096, 64], [4160, 128]]",
            "--depths", "[7, 14]", "--passes", "4", "-o", str(tmp_path)]
    assert main(argv) == 0
    info = json.loads((tmp_path / "group_buffer.json").read_text())
    ports = {p["name"]: (p["direction"], p["width"]) for p in info["ports"]}
    assert ports["start"] == ("input", 1)
    assert ports["m_axis_rdcmd_tdata"] == ("output", 128)
    assert ports["s_axis_fill_tdata"] == ("input", 64)
    assert ports["m_axis_words_tdata"] == ("output", 72)
    assert info["derived"]["commands"] == [
        hex(encode_command(base=4096, stride=64, row_bytes=64, rows=1)),
        hex(encode_command(base=4160, stride=128, row_bytes=128, rows=1))]


def test_cli_rejects_a_bad_list_in_one_line(cli_rejects):
    defaults = {"--word-bits": "72", "--groups": "[[0, 64], [64, 64]]", "--depths": "[7, 7]"}
    cli_rejects("group_buffer", defaults, ["--groups", "[[0, 64]"],
                "block group_buffer: --groups: must be a JSON list")
    cli_rejects("group_buffer", defaults, ["--depths", "[7, 8]"],
                "block group_buffer: --depths: group 1's 8 words of 72 bits do not fit in "
                "its 64 bytes")
