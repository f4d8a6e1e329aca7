"""sparse_decoder on ``cnn_ip.sparse/2`` (the block coding, both inner codings): every beat
against the weight order written out from the matrix, under stalls, on extreme records,
at one beat a cycle, from the ROM and from a stream of group images, in MyHDL and Icarus.
(``/1`` and the shared parts: test_sparse_decoder.py.)"""
import json

import numpy as np
import pytest

from blocks.sparse_decoder import BLOCK
from cnn_ip.cli import main
from cnn_ip.cosim import RESET_CYCLES, lint, run_streams
from cnn_ip.export import generate
from quant.sparse_format import CODES, FORMAT2
from test_sparse_decoder import feed, layer_with_groups, random_weights, read_passes


def block_code(B, inner):
    return {"coding": "block", "block": B, "inner": inner}


CASES = [  # lanes, simd, weights, wbits, sparsity, B, inner, HDLs
    (2, 4, "ternary", 8, 0.8, 2, "mask", ("myhdl", "icarus")),
    (2, 4, "int", 4, 0.7, 4, "dense", ("myhdl", "icarus")),
    (2, 3, "int", 3, 0.8, 2, "mask", ("myhdl", "icarus")),     # VB = 3, P = 6
    (2, 8, "int", 4, 0.9, 4, "mask", ("myhdl",)),              # offsets in steps of 4
    (1, 1, "ternary", 8, 0.9, 1, "mask", ("myhdl",)),          # P = 1: one-bit block masks
    (4, 4, "int", 2, 0.6, 16, "dense", ("myhdl",)),            # one block a beat
    (4, 2, "ternary", 8, 0.5, 1, "dense", ("myhdl",)),         # B = 1: a mask, 2-bit codes
]


@pytest.mark.parametrize("lanes,simd,weights,wbits,sparsity,B,inner,hdl", [
    (*case[:-1], hdl) for case in CASES for hdl in case[-1]])
def test_rom_passes_under_back_pressure(hdl, tmp_path, lanes, simd, weights, wbits, sparsity,
                                        B, inner):
    seed = lanes * 100 + simd * 10 + B
    W = random_weights(seed, lanes * 3, simd * 5, weights, wbits, sparsity)
    params = dict(lanes=lanes, simd=simd, weights=weights, wbits=wbits, **block_code(B, inner))
    _, kwargs = BLOCK.prepared(**params, weights_file=W)
    meta = kwargs["image"].meta
    assert (meta["format"], meta["block"], meta["inner"]) == (FORMAT2, B, inner)
    got, expected = read_passes(hdl, tmp_path, W, passes=2, stall=0.4, seed=seed, **params)
    assert [(b.data, b.last) for b in got][:len(expected)] == expected
    assert BLOCK.golden(kwargs["image"], passes=2) == expected


def extreme_layer(lanes, simd, weights, wbits):
    """Beats of every extreme: empty, full of the extreme codes (the longest record), one
    non-zero in the last element, whole blocks of two, a lone full beat between empties."""
    lo, hi = (-1, 1) if weights == "ternary" else (-(1 << (wbits - 1)), (1 << (wbits - 1)) - 1)
    P = lanes * simd
    beats = [np.zeros(P, int), np.resize([lo, hi], P), np.zeros(P, int), np.zeros(P, int),
             np.eye(1, P, P - 1, dtype=int)[0] * lo, np.resize([hi, hi, 0, 0], P),
             np.resize([lo], P), np.zeros(P, int)]
    rows = np.stack(beats).reshape(len(beats), lanes, simd)     # one group, 8 steps
    return rows.transpose(1, 0, 2).reshape(lanes, len(beats) * simd)


@pytest.mark.parametrize("weights,wbits,B,inner,hdl", [
    ("ternary", 8, 2, "mask", "myhdl"), ("ternary", 8, 2, "mask", "icarus"),
    ("int", 5, 4, "dense", "myhdl"), ("int", 5, 4, "dense", "icarus"),
    ("int", 8, 8, "mask", "myhdl")])
def test_rom_extreme_records(hdl, tmp_path, weights, wbits, B, inner):
    W = extreme_layer(2, 4, weights, wbits)
    got, expected = read_passes(hdl, tmp_path, W, passes=3, stall=0.5, seed=B, lanes=2, simd=4,
                                weights=weights, wbits=wbits, **block_code(B, inner))
    assert [(b.data, b.last) for b in got][:len(expected)] == expected


@pytest.mark.parametrize("inner", ["mask", "dense"])
def test_single_word_rom(tmp_path, inner):
    """One beat, one word: the pass's record is the whole image, its only word a tlast
    word whose next word is itself."""
    W = np.array([[0, 0, 3, 0, -4, 0, 0, 0]])
    _, kwargs = BLOCK.prepared(lanes=1, simd=8, weights="int", wbits=3, weights_file=W,
                               **block_code(2, inner))
    assert kwargs["image"].depth == 1
    got, expected = read_passes("myhdl", tmp_path, W, passes=4, stall=0.5, seed=1, lanes=1,
                                simd=8, weights="int", wbits=3, **block_code(2, inner))
    assert [(b.data, b.last) for b in got][:len(expected)] == expected


@pytest.mark.parametrize("lanes,simd,weights,wbits,B,inner", [
    (2, 4, "ternary", 8, 2, "mask"), (3, 2, "int", 4, 2, "dense"), (1, 8, "int", 3, 4, "mask")])
def test_rom_one_beat_per_cycle(tmp_path, lanes, simd, weights, wbits, B, inner):
    """Empty, full and random beats (records from the shortest to the longest, padding
    at every pass end): a beat every cycle, the first the documented latency after reset."""
    rng = np.random.default_rng(lanes + simd + B)
    W = random_weights(B, lanes * 2, simd * 5, weights, wbits, 0.7)
    for g in range(2):
        for r in range(5):
            beat = W[g * lanes:(g + 1) * lanes, r * simd:(r + 1) * simd]
            if rng.random() < 0.35:
                beat[...] = 0
            elif rng.random() < 0.4:
                beat[beat == 0] = 1
    params = dict(lanes=lanes, simd=simd, weights=weights, wbits=wbits, **block_code(B, inner))
    got, expected = read_passes("myhdl", tmp_path, W, passes=3, **params)
    assert [(b.data, b.last) for b in got][:len(expected)] == expected
    cycles = [b.cycle for b in got]
    assert cycles[-1] - cycles[0] == len(cycles) - 1
    _, kwargs = BLOCK.prepared(**params, weights_file=W)
    assert cycles[0] - RESET_CYCLES == BLOCK.estimate(**kwargs)["latency"]


def stream_feed(W, order, inner=None, **fold):
    """Group images in ``/2`` (the smallest block coding over the layer, or with the
    ``inner`` coding given) fed in ``order``, and the beats expected, written out from
    ``W``'s rows."""
    words, expected, images = feed(W, order, code={"codes": ("block",), "inner": inner},
                                   **fold)
    meta = images[0].meta
    params = {**fold, "source": "stream", "coding": "block", "block": meta["block"],
              "inner": meta["inner"], "word_bits": meta["word_bits"], "beats": meta["beats"]}
    return words, expected, images, params


@pytest.mark.parametrize("lanes,simd,weights,wbits,sparsities,hdl", [
    (2, 4, "ternary", 8, (0.5, 0.95, 0.8), "myhdl"),
    (2, 4, "ternary", 8, (0.5, 0.95, 0.8), "icarus"),
    (3, 2, "int", 4, (0.6, 0.95, 0.2), "myhdl"),
    (2, 4, "int", 6, (0.9, 0.9, 0.95), "icarus")])
def test_stream_passes_under_stalls(hdl, tmp_path, lanes, simd, weights, wbits, sparsities):
    """Groups of different lengths, one twice running, the stream ending on a group whose
    last word is never followed."""
    seed = lanes * 100 + simd * 10 + wbits
    W = layer_with_groups(seed, lanes, simd, 3, weights, wbits, sparsities)
    fold = dict(lanes=lanes, simd=simd, weights=weights, wbits=wbits)
    words, expected, images, params = stream_feed(W, [0, 1, 2, 2, 0, 1], **fold)
    assert images[0].meta["format"] == FORMAT2
    out = run_streams(BLOCK, hdl=hdl, workdir=tmp_path, inputs={"s_axis_words": words},
                      expect={"m_axis_wgt": len(expected)}, idle=0.4, stall=0.4, seed=seed,
                      params=params)
    assert [(b.data, b.last) for b in out["m_axis_wgt"]] == expected
    assert len(out["s_axis_words"]) == len(words)


@pytest.mark.parametrize("inner", ["mask", "dense"])
def test_stream_single_word_images_and_rate(tmp_path, inner):
    """One-word images (one beat a group) between longer ones, the last one ending the
    stream; words one a cycle give a beat a cycle."""
    fold = dict(lanes=2, simd=4, weights="int", wbits=4)
    W = layer_with_groups(5, 2, 4, 3, "int", 4, (0.9, 0.5))
    W = np.concatenate([W, np.zeros((2, W.shape[1]), int)])    # group 3: all zero
    W[6, 0] = -8
    words, expected, images, params = stream_feed(W, [0, 3, 3, 1, 2, 3], inner=inner, **fold)
    assert images[3].depth == 1 and params["inner"] == inner
    out = run_streams(BLOCK, hdl="myhdl", workdir=tmp_path, inputs={"s_axis_words": words},
                      expect={"m_axis_wgt": len(expected)}, params=params)
    assert [(b.data, b.last) for b in out["m_axis_wgt"]] == expected
    cycles = [b.cycle for b in out["m_axis_wgt"]]
    assert cycles[-1] - cycles[0] == len(cycles) - 1


def test_cli_writes_sparse2_where_smaller(tmp_path):
    """``cnn-ip block sparse_decoder`` on a 90 % sparse ternary layer: the writer's own
    choice is the block coding, the sidecar says so, and the Verilog is lint-clean."""
    rng = np.random.default_rng(90)
    W = rng.choice([-1, 1], size=(8, 64)) * (rng.random((8, 64)) < 0.1)
    np.save(tmp_path / "W.npy", W)
    out = tmp_path / "out"
    assert main(["block", "sparse_decoder", "--lanes", "2", "--simd", "8", "--weights",
                 "ternary", "--weights-file", str(tmp_path / "W.npy"), "-o", str(out)]) == 0
    rom = json.loads((out / "sparse_decoder_rom.json").read_text())
    assert (rom["format"], rom["coding"]) == (FORMAT2, "block")
    assert rom["bits"] < 64 * 8 * (1 + 0.1) * 0.9       # below what /1 masked would take
    lint(out / "sparse_decoder.v", "sparse_decoder")


@pytest.mark.parametrize("flags,message", [
    (["--coding", "block", "--block", "3"], "block: must be a power of two dividing"),
    (["--coding", "masked", "--inner", "mask"], "inner: must be"),
    (["--source", "stream", "--coding", "block", "--block", "4", "--word-bits", "40",
      "--beats", "2"], "inner: must be mask or dense with coding = block"),
    (["--source", "stream", "--coding", "block", "--block", "4", "--inner", "dense",
      "--word-bits", "100", "--beats", "2"], "--word-bits: must be in 4..36"),
    # element masks: P = 16, B = 4, ternary; records padded to even lengths
    (["--source", "stream", "--coding", "block", "--block", "4", "--inner", "mask",
      "--word-bits", "37", "--beats", "2"], "--word-bits: must be in 4..36"),
    (["--source", "stream", "--coding", "block", "--block", "4", "--inner", "mask",
      "--word-bits", "21", "--beats", "2"], "--word-bits: must be a multiple of 2"),
    (["--source", "stream", "--coding", "masked", "--block", "4", "--word-bits", "40",
      "--beats", "2"], "block: only with coding = block"),
])
def test_block_parameters_checked(cli_rejects, tmp_path, flags, message):
    np.save(tmp_path / "W.npy", np.zeros((4, 8), int))
    rom = [] if "stream" in flags else ["--weights-file", str(tmp_path / "W.npy")]
    cli_rejects("sparse_decoder", {"--lanes": "4", "--simd": "4", "--weights": "ternary"},
                flags + rom, message)


@pytest.mark.parametrize("order,hdl", [
    ([0, 1, 1, 0, 1], "myhdl"), ([0, 1, 1, 0, 1], "icarus"), ([1], "myhdl")])
def test_stream_record_near_the_end_of_a_last_word(hdl, tmp_path, order):
    """A one-word image whose last records start within a longest header of its word's
    end, the words coming slowly: such a record's entry is the one made with the bits
    past the word read as zero (no next word has come), never the straddling entries of
    the word before (the head table loads that word while the table pipeline writes it:
    after leaving the word before, or, the stream's first word, into an empty reader)."""
    fold = dict(lanes=2, simd=4, weights="ternary", wbits=8)
    W = np.zeros((4, 16), int)
    W[0:2, 0:4] = np.resize([1, -1, -1], (2, 4))    # group 0: a full beat, the longest record
    W[0, 5], W[1, 14] = -1, 1
    W[2, 1] = -1                                     # group 1: one non-zero, then empty beats
    words, expected, images, params = stream_feed(W, order, inner="mask", **fold)
    assert images[1].depth == 1
    assert images[1].meta["stream_bits"] > params["word_bits"] - (8 // params["block"] + 8)
    out = run_streams(BLOCK, hdl=hdl, workdir=tmp_path, inputs={"s_axis_words": words},
                      expect={"m_axis_wgt": len(expected)}, idle=0.7, stall=0.2,
                      seed=3 if len(order) > 1 else 0, params=params, max_cycles=2000)
    assert [(b.data, b.last) for b in out["m_axis_wgt"]] == expected


@pytest.mark.parametrize("B,inner,simd,hdl", [(8, "mask", 8, "myhdl"), (8, "mask", 8, "icarus"),
                                              (2, "dense", 8, "myhdl"), (16, "mask", 16, "myhdl")])
def test_all_zero_layer(tmp_path, B, inner, simd, hdl):
    """Records of a block mask alone (one bit with B = P), lint-clean and decoded (B = 16:
    a block's length in steps is wider than a word's offsets)."""
    W = np.zeros((2, 2 * simd), int)
    params = dict(lanes=1, simd=simd, weights="ternary", wbits=8, **block_code(B, inner))
    got, expected = read_passes(hdl, tmp_path, W, passes=3, stall=0.3, seed=B, **params)
    assert [(b.data, b.last) for b in got][:len(expected)] == expected
    generate(BLOCK, tmp_path / "lint", weights_file=W, **params)    # lint-clean or raises


def test_lint_clean_at_the_edges(tmp_path):
    """Offsets in steps of 4 and no straddling entries (dense blocks of B = P: a one-bit
    block mask), a masked int8 layer (steps of 8 once), two beats a pass."""
    rng = np.random.default_rng(8)
    cases = [dict(lanes=1, simd=8, weights="int", wbits=8, coding="masked"),
             dict(lanes=2, simd=4, weights="int", wbits=4, **block_code(8, "dense")),
             dict(lanes=4, simd=4, weights="int", wbits=5, **block_code(4, "dense")),
             dict(lanes=2, simd=16, weights="int", wbits=7, coding="masked")]
    for n, params in enumerate(cases):
        W = random_weights(n, params["lanes"] * 2, params["simd"] * (1 + n % 2), "int",
                           params["wbits"], 0.7)
        generate(BLOCK, tmp_path / str(n), weights_file=W, **params)


@pytest.mark.parametrize("weights,wbits,B,inner", [
    ("ternary", 8, 2, "mask"),        # /2 element masks: the rings keep own entries
    ("int", 3, None, None)])          # /1 masked
def test_ecp5_synthesis_branch_decodes(tmp_path, monkeypatch, weights, wbits, B, inner):
    """The ECP5 build as Yosys reads it (`define SYNTHESIS: the loop's instantiated LUT4,
    PFUMX and L6MUX21, test_sparse_decoder.ECP5_CELLS) under Icarus: every beat, under
    back pressure, from the DP16KD ROM."""
    import cnn_ip.cosim as cosim
    from test_sparse_decoder import ECP5_CELLS

    compile_plain = cosim.compile_icarus

    def compile_synthesis_branch(workdir, sources, top):
        (workdir / "synthesis.v").write_text("`define SYNTHESIS\n")
        (workdir / "ecp5_cells.v").write_text(ECP5_CELLS)
        return compile_plain(workdir, ["synthesis.v", *sources, "ecp5_cells.v"], top)

    monkeypatch.setattr(cosim, "compile_icarus", compile_synthesis_branch)
    W = random_weights(23, 6, 20, weights, wbits, 0.8)
    params = dict(lanes=2, simd=4, weights=weights, wbits=wbits,
                  **(block_code(B, inner) if B else {"coding": "masked"}))
    got, expected = read_passes("icarus", tmp_path, W, passes=2, stall=0.4, seed=3,
                                target="ecp5-85f", **params)
    assert [(b.data, b.last) for b in got][:len(expected)] == expected
    verilog = (tmp_path / "sparse_decoder.v").read_text()
    assert "L6MUX21" in verilog and "`ifdef SYNTHESIS" in verilog
    # the run compiled the synthesis branch (cosim went through the patched compile)
    assert (tmp_path / "ecp5_cells.v").exists()
