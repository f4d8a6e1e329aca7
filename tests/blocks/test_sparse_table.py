"""blocks.sparse_table's ``/2`` table (element masks): every entry a record can use, against
a model that parses the record from the spec (docs/sparse_format.md, ``block``), on random
words of every density and on real images, under random pipeline stalls and bubbles, in
MyHDL and in Icarus (the converted Verilog)."""
import random

import numpy as np
import pytest
from myhdl import (ResetSignal, Signal, Simulation, StopSimulation, block, delay,
                   instance, intbv)

from blocks.sparse_table import Shape, record_table, table_stages
from cnn_ip.cosim import lint, part_dut
from quant.sparse_format import encode, words_to_bits


@block
def table_top(aclk, aresetn, adv, word, wvalid, wlast, tab, tword, tlast, tvalid, *, P, VB, W,
              B):
    return record_table(aclk, aresetn, adv, word, wvalid, wlast, tab, tword, tlast, tvalid,
                        P=P, VB=VB, W=W, block=B)


def port_set(shape):
    return dict(aclk=Signal(bool(0)), aresetn=ResetSignal(0, active=0, isasync=False),
                adv=Signal(bool(0)),
                word=Signal(intbv(0)[shape.W:]), wvalid=Signal(bool(0)),
                wlast=Signal(bool(0)), tab=Signal(intbv(0)[shape.entries * (shape.ob + 1):]),
                tword=Signal(intbv(0)[shape.W:]), tlast=Signal(bool(0)),
                tvalid=Signal(bool(0)))


def record_length(bits, start, P, B, VB):
    """The length of the record whose first bit is ``bits[start]`` (bits past the end are
    0), and whether its header (block and element masks) ends inside ``bits``."""
    K = P // B
    ext = np.concatenate([bits, np.zeros(K + P, dtype=np.uint8)])
    m = int(ext[start:start + K].sum())
    n = int(ext[start + K:start + K + B * m].sum())
    length = K + B * m + VB * n
    return length + length % 2, start + K + B * m <= len(bits)     # padded to even


def wanted(prev, u, shape, VB):
    """``{entry index: (pop, next)}`` for the starts a valid image can use: records no
    longer than a word whose header the table sees (entries of the word before: records
    that start there; the word's own: records whose header lies in it)."""
    W, g, Q, QN = shape.W, shape.g, shape.Q, shape.QN
    y = np.concatenate([words_to_bits([prev], W)[W - Q:], words_to_bits([u], W)])
    out = {}
    for i in range(shape.entries):
        s = g - 1 + g * i
        length, seen = record_length(y, s, shape.P, shape.block, VB)
        if length > W or not seen:
            continue
        end = s + length - Q                 # in bits of u (negative: still in prev)
        word_end = 0 if i < QN else W
        pop = end >= word_end
        nxt = end - word_end if pop else end + (W if i < QN else 0)
        out[i] = (int(pop), nxt // g)
    return out


def run_table(hdl, tmp_path, shape, VB, words, seed):
    ports = port_set(shape)
    kw = dict(P=shape.P, VB=VB, W=shape.W, B=shape.block)
    dut = part_dut(lambda **p: table_top(**p, **kw), ports, port_set(shape), hdl=hdl,
                   workdir=tmp_path)
    rng = random.Random(seed)
    got, sent = [], []

    @block
    def bench():
        @instance
        def drive():
            clk = ports["aclk"]
            pending = list(words)
            for cycle in range(40 * len(words) + 40):
                # inputs change with the clock low, outputs are read just before the edge
                ports["aresetn"].next = cycle >= 2
                adv = cycle >= 3 and rng.random() < 0.7
                ports["adv"].next = adv
                if adv:
                    if pending and rng.random() < 0.8:
                        w = pending.pop(0)
                        ports["word"].next, ports["wvalid"].next = w, 1
                        last = rng.random() < 0.3
                        ports["wlast"].next = last
                        sent.append((w, last))
                    else:   # a bubble with junk on the word
                        ports["word"].next = rng.getrandbits(shape.W)
                        ports["wvalid"].next = 0
                yield delay(4)
                if adv and ports["tvalid"]:
                    got.append((int(ports["tab"].val), int(ports["tword"].val),
                                bool(ports["tlast"])))
                clk.next = 1
                yield delay(5)
                clk.next = 0
                yield delay(1)
                if not pending and len(got) == len(sent):
                    break
            raise StopSimulation

        return drive

    Simulation(dut, bench()).run(quiet=True)
    return got, sent


def check_tables(got, sent, shape, VB):
    assert [(w, last) for _, w, last in got] == sent      # the word and its tlast, in step
    eb, checked = shape.ob + 1, 0
    for k, (tab, u, _) in enumerate(got):
        prev = sent[k - 1][0] if k else 0
        for i, (pop, nxt) in wanted(prev, u, shape, VB).items():
            entry = (tab >> (i * eb)) & ((1 << eb) - 1)
            assert (entry >> shape.ob, entry & ((1 << shape.ob) - 1)) == (pop, nxt), (k, i)
            checked += 1
    return checked


def random_words(rng, W, n):
    """Words of every density: sparse ones (many short valid records), empty and full."""
    out = [0, (1 << W) - 1]
    for k in range(n):
        density = (0.05, 0.15, 0.3, 0.6)[k % 4]
        out.append(sum(1 << b for b in range(W) if rng.random() < density))
    return out


CASES = [  # P, B, VB, W
    (8, 2, 1, 10),      # ternary, W below the longest header (P/B + P = 12), g = 1
    (8, 4, 3, 24),      # int3, g = 1
    (16, 4, 4, 32),     # int4: g = 4
    (8, 1, 1, 12),      # B = 1: one element a block
]


@pytest.mark.parametrize("P,B,VB,W", CASES)
def test_block_table_random_words(hdl, tmp_path, P, B, VB, W):
    shape = Shape(W, P, VB, B)
    rng = random.Random(P * 1000 + B * 10 + VB)
    words = random_words(rng, W, 30)
    got, sent = run_table(hdl, tmp_path, shape, VB, words, seed=P + B)
    assert check_tables(got, sent, shape, VB) > 5 * len(words)


def real_image(P, B, weights, wbits, seed):
    rng = np.random.default_rng(seed)
    lo, hi = (-1, 1) if weights == "ternary" else (-(1 << (wbits - 1)), (1 << (wbits - 1)) - 1)
    W = rng.integers(lo, hi + 1, size=(4, 6 * P // 4))
    W[W == 0] = hi
    W[rng.random(W.shape) < 0.8] = 0
    W[:, :P // 4 * 2] = 0            # all-zero beats
    return encode(W, weights=weights, wbits=wbits, lanes=4, simd=P // 4, coding="block",
                  block=B, inner="mask")


def test_block_table_walks_a_real_image(tmp_path):
    """Every record start of an encoded image, walked from the tables alone, lands on the
    next record, the pop bits and offsets agreeing with the image's record lengths."""
    image = real_image(16, 4, "int", 4, seed=3)
    meta, W = image.meta, image.word_bits
    shape = Shape(W, 16, meta["value_bits"], 4)
    got, sent = run_table("myhdl", tmp_path, shape, meta["value_bits"], image.words, seed=1)
    assert [w for _, w, _ in got] == image.words
    eb, g, QN = shape.ob + 1, shape.g, shape.QN
    word, off = 0, 0
    for _ in range(meta["beats"]):
        own = got[word][0]
        i = QN + off
        if off >= shape.TN - QN and word + 1 < len(got):     # the next word's entries
            own, i = got[word + 1][0], off - (shape.TN - QN)
        entry = (own >> (i * eb)) & ((1 << eb) - 1)
        word += entry >> shape.ob
        off = entry & ((1 << shape.ob) - 1)
    assert word * W + off * g == meta["stream_bits"]


def test_shapes():
    one = Shape(43, 32, 1)
    assert (one.g, one.QN, one.own, one.entries, one.Q) == (1, 31, 12, 43, 31)
    two = Shape(32, 16, 4, 4)
    assert (two.g, two.Q, two.QN, two.own, two.entries) == (4, 19, 4, 8, 12)
    assert Shape(10, 8, 1, 2).Q == 9          # a word is the longest a header can be
    assert Shape(64, 16, 8).g == 4            # at most a chunk, though 8 divides all
    # past the element masks, their counts, then lengths, after the block-mask counts
    assert table_stages(32, 16, 4) == table_stages(32, 16) + 3


def test_block_table_lint_clean(tmp_path):
    shape = Shape(32, 16, 4, 4)
    table_top(**port_set(shape), P=16, VB=4, W=32, B=4).convert(
        hdl="Verilog", path=str(tmp_path), name="top", testbench=False)
    assert lint(tmp_path / "top.v", "top") == []
