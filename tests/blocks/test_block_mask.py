"""blocks.block_mask: ``/2`` records (written by quant.sparse_format) expanded into the
``/1`` record (element masks) or the beat's codes (dense blocks), against the spec's own
``/1``/dense encoding of the same beat and against the golden model, with junk after each
record and bubbles, in MyHDL and Icarus, and lint-clean."""
import random

import numpy as np
import pytest
from myhdl import (ResetSignal, Signal, Simulation, StopSimulation, block, delay,
                   instance, intbv)

from blocks.block_mask import block_expand, expand, latency, value_bits
from cnn_ip.cosim import lint, part_dut
from quant.sparse_format import beat_stream
from quant.weight_modes import code_bits, value_bits as stored_bits


@block
def expand_top(aclk, aresetn, rv, rec, rl, ov, out, ol, *, P, B, WB, inner):
    return block_expand(aclk, aresetn, rv, rec, rl, ov, out, ol, P=P, B=B, WB=WB, inner=inner)


def port_set(W, out_bits):
    return dict(aclk=Signal(bool(0)), aresetn=ResetSignal(0, active=0, isasync=False),
                rv=Signal(bool(0)), rec=Signal(intbv(0)[W:]), rl=Signal(bool(0)),
                ov=Signal(bool(0)), out=Signal(intbv(0)[out_bits:]), ol=Signal(bool(0)))


def as_int(bits):
    return int("".join(str(int(b)) for b in reversed(bits)) or "0", 2)


def beats_for(rng, P, B, weights, wbits, n):
    """Beats of every shape: empty, full, one non-zero, block-sparse and scattered."""
    lo, hi = (-1, 1) if weights == "ternary" else (-(1 << (wbits - 1)), (1 << (wbits - 1)) - 1)
    out = [np.zeros(P, int), np.full(P, lo), np.full(P, hi)]
    one = np.zeros(P, int)
    one[P - 1] = lo
    out.append(one)
    for k in range(n):
        beat = rng.integers(lo, hi + 1, size=P)
        beat[beat == 0] = hi
        if k % 2:
            beat = (beat.reshape(-1, B) * (rng.random((P // B, 1)) < 0.4)).ravel()
        else:
            beat[rng.random(P) < 0.7] = 0
        out.append(beat)
    return out


def run(hdl, tmp_path, recs, *, W, out_bits, P, B, WB, inner, seed):
    ports = port_set(W, out_bits)
    kw = dict(P=P, B=B, WB=WB, inner=inner)
    dut = part_dut(lambda **p: expand_top(**p, **kw), ports, port_set(W, out_bits), hdl=hdl,
                   workdir=tmp_path)
    rng = random.Random(seed)
    got, sent = [], []

    @block
    def bench():
        @instance
        def drive():
            pending = list(recs)
            for cycle in range(3 * len(recs) + 20):
                ports["aresetn"].next = cycle >= 2
                fire = cycle >= 3 and bool(pending) and rng.random() < 0.7
                last = rng.random() < 0.5
                ports["rv"].next = fire
                ports["rec"].next = pending.pop(0) if fire else rng.getrandbits(W)
                ports["rl"].next = last
                if fire:
                    sent.append((cycle, last))
                yield delay(4)
                if ports["ov"]:
                    got.append((cycle, int(ports["out"].val), bool(ports["ol"])))
                ports["aclk"].next = 1
                yield delay(5)
                ports["aclk"].next = 0
                yield delay(1)
            raise StopSimulation

        return drive

    Simulation(dut, bench()).run(quiet=True)
    # each record's tlast with it, out two edges after it went in
    assert [(c, l) for c, _, l in got] == [(c + latency(), l) for c, l in sent]
    return [out for _, out, _ in got]


CASES = [  # P, B, weights, wbits, inner, HDLs
    (8, 2, "ternary", None, "mask", ("myhdl", "icarus")),
    (8, 4, "int", 3, "mask", ("myhdl", "icarus")),
    (8, 1, "ternary", None, "mask", ("myhdl",)),
    (8, 2, "int", 4, "dense", ("myhdl", "icarus")),
    (16, 16, "int", 2, "dense", ("myhdl",)),
    (4, 4, "ternary", None, "dense", ("myhdl",)),
]


@pytest.mark.parametrize("P,B,weights,wbits,inner,hdl", [
    (*case[:-1], hdl) for case in CASES for hdl in case[-1]])
def test_expands_written_records(hdl, tmp_path, P, B, weights, wbits, inner):
    rng = np.random.default_rng(P * 100 + B)
    WB, VB = code_bits(weights, wbits), stored_bits(weights, wbits)
    beats = beats_for(rng, P, B, weights, wbits, 24)
    streams = [beat_stream(b, weights=weights, wbits=wbits, coding="block", block=B,
                           inner=inner) for b in beats]
    W = max(len(s) for s in streams) + 3                 # junk after the longest record
    out_bits = P + value_bits(W, P, B, VB) if inner == "mask" else P * WB
    recs = [as_int(s) | (int(rng.integers(0, 1 << 30)) << len(s)) & ((1 << W) - 1)
            for s in streams]
    got = run(hdl, tmp_path, recs, W=W, out_bits=out_bits, P=P, B=B, WB=WB, inner=inner,
              seed=B)
    assert len(got) == len(recs)
    for beat, rec, out in zip(beats, recs, got):
        assert out == expand(rec, P=P, B=B, WB=WB, inner=inner, out_bits=out_bits)
        if inner == "mask":     # the /1 record of the same beat, then whatever follows
            one = beat_stream(beat, weights=weights, wbits=wbits, coding="masked")
            assert out & ((1 << len(one)) - 1) == as_int(one)
        else:
            assert out == as_int(beat_stream(beat, weights=weights, wbits=wbits, coding="dense"))


def test_golden_on_the_spec_example():
    """docs/sparse_format.md's worked example: beat 0's record 0 1 · 0 0 1 0 · 1."""
    rec = as_int([0, 1, 0, 0, 1, 0, 1])
    out = expand(rec, P=8, B=4, WB=2, inner="mask", out_bits=9)
    assert out == as_int([0, 0, 0, 0, 0, 0, 1, 0, 1])      # element 6, sign 1 (-1)


@pytest.mark.parametrize("inner", ["mask", "dense"])
def test_lint_clean(tmp_path, inner):
    W, out_bits = 30, (8 + value_bits(30, 8, 2, 3) if inner == "mask" else 8 * 3)
    expand_top(**port_set(W, out_bits), P=8, B=2, WB=3, inner=inner).convert(
        hdl="Verilog", path=str(tmp_path), name="top", testbench=False)
    assert lint(tmp_path / "top.v", "top") == []


def test_lint_clean_without_values(tmp_path):
    """Records that are only block masks and element masks (an all-zero layer's word, or
    one too short for a value): no values, no count of the blocks for them."""
    expand_top(**port_set(5, 4), P=4, B=4, WB=2, inner="mask").convert(
        hdl="Verilog", path=str(tmp_path), name="top", testbench=False)
    assert lint(tmp_path / "top.v", "top") == []
