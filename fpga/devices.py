"""Named FPGA resource budgets: what a design may use on each supported device.

Every number comes from the vendor's product table or data sheet named in ``source``.
The planner reads these budgets; ``fpga.synth`` checks synthesized designs against them.

Units
-----
lut         logic LUTs (LUT6 on Xilinx 7-series/UltraScale+, LUT4 on ECP5 and iCE40)
ff          flip-flops
dsp         multiplier blocks: DSP48E1/DSP48E2 slices (Xilinx), 18x18 multipliers
            (ECP5 MULT18X18D), SB_MAC16 (iCE40)
bram_blocks block RAMs in the vendor's native unit: 36 Kb RAMB36 (Xilinx, two RAMB18
            each), 18 Kb EBR (ECP5 DP16KD), 4 Kb EBR (iCE40 SB_RAM40_4K)
bram_block_bits bits of one such block, parity bits included, as the data sheets count them
io          user I/O pins of the package (only iCE40 designs are placed onto real pins;
            Xilinx is synthesized only and ECP5 is placed out of context)
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Device:
    """A device's resource budget and how the open flow addresses it."""

    name: str
    family: str            # "xilinx" | "ecp5" | "ice40"
    part: str              # the vendor's part number
    board: str             # a board that carries it (for orientation only)
    lut: int
    ff: int
    dsp: int
    bram_blocks: int
    bram_block_bits: int
    io: int | None         # user I/O of the package; None where the flow does not place pins
    source: str
    tool_args: tuple = ()  # family-specific: synth_xilinx -family, nextpnr device flags
    extra: dict | None = None   # resources outside the five above, e.g. iCE40 SPRAM

    @property
    def bram_bits(self) -> int:
        return self.bram_blocks * self.bram_block_bits

    def budget(self) -> dict:
        """The five budgeted resources as a dictionary (what the planner consumes)."""
        return {"lut": self.lut, "ff": self.ff, "dsp": self.dsp,
                "bram_blocks": self.bram_blocks, "bram_bits": self.bram_bits}


KBIT = 1024

DEVICES = {d.name: d for d in (
    Device(
        name="xc7z020", family="xilinx", part="XC7Z020-1CLG400C", board="PYNQ-Z2",
        lut=53_200, ff=106_400, dsp=220, bram_blocks=140, bram_block_bits=36 * KBIT,
        io=None,
        source="Xilinx DS190, Zynq-7000 SoC Data Sheet: Overview "
               "(Z-7020: 85K logic cells, 53,200 LUTs, 106,400 FFs, "
               "4.9 Mb block RAM = 140 x 36 Kb, 220 DSP slices)",
        tool_args=("-family", "xc7")),
    Device(
        name="xc7vx485t", family="xilinx", part="XC7VX485T-2FFG1761C", board="VC707",
        lut=303_600, ff=607_200, dsp=2_800, bram_blocks=1_030, bram_block_bits=36 * KBIT,
        io=None,
        source="Xilinx DS180, 7 Series FPGAs Data Sheet: Overview "
               "(XC7VX485T: 75,900 slices x 4 LUT6 = 303,600 LUTs, 607,200 FFs, "
               "2,800 DSP48E1, 1,030 x 36 Kb block RAM = 37,080 Kb)",
        tool_args=("-family", "xc7")),
    Device(
        name="xczu9eg", family="xilinx", part="XCZU9EG-2FFVB1156E", board="ZCU102",
        lut=274_080, ff=548_160, dsp=2_520, bram_blocks=912, bram_block_bits=36 * KBIT,
        io=None,
        source="Xilinx DS891, Zynq UltraScale+ MPSoC Data Sheet: Overview "
               "(ZU9EG: 274,080 CLB LUTs, 548,160 CLB FFs, 912 x 36 Kb block RAM = "
               "32.1 Mb, 2,520 DSP48E2; no UltraRAM)",
        tool_args=("-family", "xcup")),
    Device(
        name="ecp5-25f", family="ecp5", part="LFE5U-25F-6BG381C", board="ULX3S-25F",
        lut=24_288, ff=24_288, dsp=28, bram_blocks=56, bram_block_bits=18 * KBIT,
        io=197,
        source="Lattice FPGA-DS-02012, ECP5 and ECP5-5G Family Data Sheet, family table "
               "(LFE5U-25: 24K LUTs (12,144 slices x 2 LUT4 + 2 FF), 56 x 18 Kb sysMEM "
               "EBR = 1,008 Kb, 28 18x18 multipliers, 197 I/O in CABGA381); exact LUT/FF "
               "counts as nextpnr-ecp5 reports the TRELLIS_COMB/TRELLIS_FF sites",
        tool_args=("--25k", "--package", "CABGA381")),
    Device(
        name="ecp5-85f", family="ecp5", part="LFE5U-85F-6BG381C", board="ULX3S-85F",
        lut=83_640, ff=83_640, dsp=156, bram_blocks=208, bram_block_bits=18 * KBIT,
        io=205,
        source="Lattice FPGA-DS-02012, ECP5 and ECP5-5G Family Data Sheet, family table "
               "(LFE5U-85: 84K LUTs (41,820 slices x 2 LUT4 + 2 FF), 208 x 18 Kb sysMEM "
               "EBR = 3,744 Kb, 156 18x18 multipliers, 205 I/O in CABGA381); exact LUT/FF "
               "counts as nextpnr-ecp5 reports the TRELLIS_COMB/TRELLIS_FF sites",
        tool_args=("--85k", "--package", "CABGA381")),
    Device(
        name="ice40-up5k", family="ice40", part="iCE40UP5K-SG48I", board="iCEBreaker",
        lut=5_280, ff=5_280, dsp=8, bram_blocks=30, bram_block_bits=4 * KBIT, io=39,
        source="Lattice FPGA-DS-02008, iCE40 UltraPlus Family Data Sheet, family table "
               "(iCE40UP5K: 5,280 LUT4 logic cells each with one FF, 30 x 4 Kb sysMEM EBR = "
               "120 Kb, 4 x 256 Kb SPRAM = 1 Mb, 8 MAC16 DSP blocks, 39 I/O in SG48)",
        tool_args=("--up5k", "--package", "sg48"),
        extra={"spram_blocks": 4, "spram_block_bits": 256 * KBIT}),
)}


def device(name: str) -> Device:
    """The named device; ``KeyError`` with the known names if there is none."""
    try:
        return DEVICES[name]
    except KeyError:
        raise KeyError(f"unknown target {name!r} (known: {', '.join(DEVICES)})") from None
