"""The RAM primitive against a model of a memory, in MyHDL and Icarus; block counts."""
import random
import re

import pytest
from myhdl import Signal, StopSimulation, block, instance, intbv

from blocks.ram import (add_blocks, address_bits, block_units, bram_blocks, estimate,
                        memory_style, ram, sim_files, write_sim_files)
from blocks.spec import BlockDef, Param
from cnn_ip.cosim import clock_reset_driver, dut, lint
from cnn_ip.export import generate


@block
def ram_top(aclk, write, waddr, wdata, read, raddr, rdata, clear=None, out_enable=None, *,
            depth, width, with_clear, style, staged=False, target="generic"):
    return ram(aclk, write=write, waddr=waddr, wdata=wdata, read=read, raddr=raddr,
               rdata=rdata, clear=clear if with_clear else None,
               out_enable=out_enable if staged else None, depth=depth, memory="test_mem",
               style=style, target=target)


def ports(*, depth, width, with_clear, style, staged=False, target="generic"):
    a = address_bits(depth)
    signals = {"aclk": Signal(bool(0)), "write": Signal(bool(0)),
               "waddr": Signal(intbv(0)[a:]), "wdata": Signal(intbv(0)[width:]),
               "read": Signal(bool(0)), "raddr": Signal(intbv(0)[a:]),
               "clear": Signal(bool(0)), "rdata": Signal(intbv(0)[width:])}
    if not with_clear:
        del signals["clear"]
    if staged:
        signals["out_enable"] = Signal(bool(0))
    return signals


# A test-only BlockDef so that the co-simulation harness can convert and run the primitive.
RAM_TOP = BlockDef(
    name="ram_top", build=ram_top, ports=ports, golden=None, estimate=lambda **p: {},
    params=(Param("depth", int, lo=2, hi=1 << 16), Param("width", int, lo=1, hi=512),
            Param("with_clear", bool), Param("style", str, choices=("auto", "block",
                                                                     "distributed")),
            Param("staged", bool, default=False),
            Param("target", str, default="generic", choices=("generic", "ecp5-85f"))),
    write_files=lambda kw, out: write_sim_files(
        sim_files(kw["width"], kw["depth"], style=kw["style"], out_register=kw["staged"],
                  target=kw["target"]), out))


def trace(hdl, workdir, params, cycles=400):
    """Random writes, reads and clears (never a read of the address being written).

    Returns the model's expected ``rdata`` and what the RAM gave, per cycle after the
    first read (before it ``rdata`` is undefined in Verilog).
    """
    depth, width = params["depth"], params["width"]
    signals = ports(**params)
    aresetn = Signal(bool(0))
    rng = random.Random(depth * 7 + width)
    top = (1 << width) - 1
    model = [None] * depth
    expected, seen = [], []
    staged = params.get("staged", False)

    @block
    def bench():
        memory = dut(RAM_TOP, signals, hdl=hdl, workdir=workdir, **params)

        @instance
        def drive():
            value = first = None
            for _ in range(cycles):
                write = rng.random() < 0.6
                waddr = rng.randrange(depth)
                wdata = rng.choice([0, top, rng.getrandbits(width)])
                read = rng.random() < 0.7
                raddr = rng.randrange(depth)
                while write and read and raddr == waddr:
                    raddr = rng.randrange(depth)
                clear = params["with_clear"] and rng.random() < 0.3
                out_enable = rng.random() < 0.6
                signals["write"].next, signals["waddr"].next = write, waddr
                signals["wdata"].next = wdata
                signals["read"].next, signals["raddr"].next = read, raddr
                if params["with_clear"]:
                    signals["clear"].next = clear
                if staged:
                    # rdata takes the first stage's word; the stage takes the read
                    signals["out_enable"].next = out_enable
                    if out_enable:
                        value = first
                    if read:
                        first = 0 if clear else model[raddr]
                elif read:
                    value = 0 if clear else model[raddr]
                if write:
                    model[waddr] = wdata
                yield signals["aclk"].posedge
                yield signals["aclk"].negedge
                expected.append(value)
                seen.append(int(signals["rdata"]))
            raise StopSimulation

        return clock_reset_driver(signals["aclk"], aresetn), memory, drive

    bench().run_sim(quiet=True)
    # Words never written are undefined in Verilog: compare only defined reads.
    pairs = [(e, s) for e, s in zip(expected, seen) if e is not None]
    return [e for e, _ in pairs], [s for _, s in pairs]


CASES = [
    {"depth": 2, "width": 1, "with_clear": False, "style": "auto"},
    {"depth": 40, "width": 13, "with_clear": True, "style": "auto", "staged": True},
    # the same two-stage read on instantiated ECP5 DP16KD blocks (100 bits: 3 blocks)
    {"depth": 300, "width": 100, "with_clear": False, "style": "block", "staged": True},
    {"depth": 37, "width": 13, "with_clear": True, "style": "distributed"},
    {"depth": 300, "width": 72, "with_clear": True, "style": "block"},
    {"depth": 64, "width": 9, "with_clear": False, "style": "block"},
]


def case_id(p):
    return "d{depth}w{width}c{with_clear:d}-{style}".format(**p) + (
        "-staged" if p.get("staged") else "") + ("-" + p["target"] if "target" in p else "")


@pytest.mark.parametrize("params", CASES, ids=case_id)
def test_reads_what_was_written(hdl, tmp_path, params):
    expected, seen = trace(hdl, tmp_path, params)
    assert len(expected) > 100
    assert seen == expected


ECP5 = {"depth": 300, "width": 100, "with_clear": False, "style": "block", "staged": True,
        "target": "ecp5-85f"}


def test_ecp5_output_register_on_dp16kd_in_icarus(tmp_path):
    """The two-stage read on instantiated DP16KD blocks (100 bits: 3 of them) with the
    project's simulation model, which the harness compiles beside the Verilog (every
    ``*_sim.v`` of the directory); MyHDL runs the same model for every target."""
    expected, seen = trace("icarus", tmp_path, ECP5)
    assert len(expected) > 100
    assert seen == expected
    text = (tmp_path / "ram_top.v").read_text()
    assert text.count("DP16KD #(") == 3 and text.count('.REGMODE_B("OUTREG")') == 3
    assert "test_mem [0:" not in text       # no inferred memory beside the blocks
    assert sorted(p.name for p in tmp_path.glob("*_sim.v")) == ["DP16KD_sim.v"]


def test_ecp5_variant_is_lint_clean(tmp_path):
    generate(RAM_TOP, tmp_path, **ECP5)
    assert (tmp_path / "DP16KD_sim.v").exists()
    lint(tmp_path / "ram_top.v", "ram_top")


def test_ecp5_needs_the_output_register_and_block_style():
    assert sim_files(100, 300, style="block", out_register=True, target="ecp5-85f")
    assert not sim_files(100, 300, style="block", out_register=False, target="ecp5-85f")
    assert not sim_files(100, 300, style="distributed", out_register=True, target="ecp5-85f")
    assert not sim_files(100, 513, style="block", out_register=True, target="ecp5-85f")
    assert not sim_files(100, 300, style="block", out_register=True, target="xc7z020")
    with pytest.raises(ValueError, match="^target: must be one of generic"):
        sim_files(1, 2, target="virtex2")


@pytest.mark.parametrize("params", CASES, ids=case_id)
def test_verilog_names_memory_and_style_and_is_lint_clean(tmp_path, params):
    generate(RAM_TOP, tmp_path, **params)
    text = (tmp_path / "ram_top.v").read_text()
    style = memory_style(params["width"], params["depth"], params["style"])
    declared = re.search(r"\(\* (.*) \*\) reg \[(\d+):0\] test_mem \[0:(\d+)-1\];", text)
    assert declared, text
    assert declared.group(1) == f'ram_style = "{style}", no_rw_check'
    assert int(declared.group(2)) + 1 == params["width"]
    assert int(declared.group(3)) == params["depth"]
    lint(tmp_path / "ram_top.v", "ram_top")


def test_auto_style_threshold():
    assert memory_style(512, 64) == "distributed"        # shallow: LUT RAM at any width
    assert memory_style(32, 65) == "block"               # 2080 bits, 65 deep
    assert memory_style(16, 128) == "distributed"        # 2048 bits
    assert memory_style(16, 129) == "block"
    assert memory_style(1, 4096, "distributed") == "distributed"
    assert memory_style(1, 8, "block") == "block"
    with pytest.raises(ValueError, match="^style: must be one of auto, block, distributed"):
        memory_style(1, 8, "ultra")


@pytest.mark.parametrize("width,depth,xilinx,ecp5", [
    # (width, depth): RAMB18 / RAMB36 by 7-series aspect ratios, DP16KD by ECP5's
    (8, 512, (1, 0), 1),          # 512 x 9 fits one 18 Kb block
    (36, 512, (1, 0), 1),         # 512 x 36: simple dual-port width
    (72, 512, (0, 1), 2),         # two 18 Kb halves: one RAMB36
    (8, 4096, (0, 1), 2),         # 2K x 9 twice
    (1, 16384, (1, 0), 1),        # 16K x 1
    (1, 16385, (0, 1), 2),
    (129, 256, (0, 2), 4),        # tile_dma 128/64/4's read FIFO: 4 x (512 x 36)
    (64, 512, (0, 1), 2),         # line_buffer 128x16 C8 S8 A8
    (18, 1025, (0, 1), 2),
    (10, 1000, (1, 0), 1),        # 1K x 18
    # 512 x 36: 6 x 3 = 18, 1K x 18: 3 x 6 = 18, 2K x 9: 2 x 12 = 24, 4K x 4: 25
    (100, 3000, (0, 9), 18),
])
def test_bram_blocks_by_aspect_ratio(width, depth, xilinx, ecp5):
    got = bram_blocks(width, depth, style="block")
    assert got == {"xilinx": {"RAMB18": xilinx[0], "RAMB36": xilinx[1]},
                   "ecp5": {"DP16KD": ecp5}}


def test_bram_blocks_counts_nothing_in_lut_ram():
    zero = {"xilinx": {"RAMB18": 0, "RAMB36": 0}, "ecp5": {"DP16KD": 0}}
    assert bram_blocks(16, 128) == zero
    assert bram_blocks(16, 129) != zero
    assert estimate(width=16, depth=129)["bram"] == bram_blocks(16, 129)


def test_add_blocks_pairs_ramb18_of_different_memories():
    one = bram_blocks(8, 512, style="block")
    total = add_blocks(one, one, one)
    assert total == {"xilinx": {"RAMB18": 1, "RAMB36": 1}, "ecp5": {"DP16KD": 3}}
    assert block_units(total) == {"xilinx": 1.5, "ecp5": 3}


def test_rejects_bad_parameters():
    signals = ports(depth=4, width=8, with_clear=False, style="auto")
    kwargs = dict(write=signals["write"], waddr=signals["waddr"], wdata=signals["wdata"],
                  read=signals["read"], raddr=signals["raddr"], rdata=signals["rdata"])
    with pytest.raises(ValueError, match="^memory: must be a Verilog identifier"):
        ram(signals["aclk"], **kwargs, depth=4, memory="my mem")
    with pytest.raises(ValueError, match="^depth: must be a positive integer"):
        ram(signals["aclk"], **kwargs, depth=0, memory="m")
    with pytest.raises(ValueError, match="^waddr: is 2 bits wide, expected 3"):
        ram(signals["aclk"], **kwargs, depth=5, memory="m")
