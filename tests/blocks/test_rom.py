"""The ROM primitive reads the same words in MyHDL and in Icarus (from its $readmemh file)."""
import random

import pytest
from myhdl import Signal, StopSimulation, block, instance, intbv

from blocks.rom import address_bits, rom
from blocks.spec import BlockDef, Param
from cnn_ip.cosim import clock_reset_driver, dut, lint
from cnn_ip.export import generate
from quant.rom_image import write_rom


def words_for(depth, word_bits):
    rng = random.Random(depth * 1000 + word_bits)
    words = [rng.getrandbits(word_bits) for _ in range(depth)]
    words[0], words[-1] = (1 << word_bits) - 1, 0  # extreme values
    return words


@block
def rom_top(aclk, en, addr, dout, *, words, word_bits):
    return rom(aclk, en, addr, dout, words=words, word_bits=word_bits, file="rom_top.hex")


def prepare(params):
    return {"words": words_for(params["depth"], params["word_bits"]),
            "word_bits": params["word_bits"]}


def ports(*, words, word_bits):
    return {"aclk": Signal(bool(0)), "en": Signal(bool(0)),
            "addr": Signal(intbv(0)[address_bits(len(words)):]),
            "dout": Signal(intbv(0)[word_bits:])}


# A test-only BlockDef so that the co-simulation harness can convert and run the primitive.
ROM_TOP = BlockDef(
    name="rom_top", build=rom_top, ports=ports, prepare=prepare, golden=None,
    estimate=lambda **params: {},
    params=(Param("depth", int, lo=1, hi=1 << 16), Param("word_bits", int, lo=1, hi=512)),
    write_files=lambda kw, out: [write_rom(out, "rom_top", kw["words"], kw["word_bits"],
                                           format="test")["file"]])


def read_trace(hdl, workdir, depth, word_bits, cycles=300):
    """Drive random en/addr for ``cycles`` cycles; return dout seen at each clock edge."""
    signals = ports(**prepare({"depth": depth, "word_bits": word_bits}))
    aresetn = Signal(bool(0))
    rng = random.Random(depth)
    seen, driven = [], []

    @block
    def bench():
        memory = dut(ROM_TOP, signals, hdl=hdl, workdir=workdir, depth=depth,
                     word_bits=word_bits)

        @instance
        def drive():
            for _ in range(cycles):
                en, addr = rng.random() < 0.7, rng.randrange(depth)
                signals["en"].next, signals["addr"].next = en, addr
                driven.append((en, addr))
                yield signals["aclk"].posedge
                yield signals["aclk"].negedge
                seen.append(int(signals["dout"]))
            raise StopSimulation

        return clock_reset_driver(signals["aclk"], aresetn), memory, drive

    bench().run_sim(quiet=True)
    return driven, seen


@pytest.mark.parametrize("depth,word_bits", [(1, 1), (37, 13), (300, 72)])
def test_reads_its_image(hdl, tmp_path, depth, word_bits):
    driven, seen = read_trace(hdl, tmp_path, depth, word_bits)
    words = words_for(depth, word_bits)
    expected, value = [], None
    for en, addr in driven:
        value = words[addr] if en else value  # dout holds while en is low
        expected.append(value)
    first = next(i for i, (en, _) in enumerate(driven) if en)  # undefined before a read
    assert seen[first:] == expected[first:]


def test_lint_clean(tmp_path):
    generate(ROM_TOP, tmp_path, depth=100, word_bits=20)
    assert (tmp_path / "rom_top.hex").read_text().count("\n") == 100
    lint(tmp_path / "rom_top.v", "rom_top")


def test_rejects_words_wider_than_the_port():
    with pytest.raises(ValueError, match="words: every word must fit in word_bits = 3 bits"):
        rom(*ports(words=[1, 8], word_bits=3).values(), words=[1, 8], word_bits=3, file="x.hex")
