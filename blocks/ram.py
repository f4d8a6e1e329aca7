"""``ram``: the project's one simple dual-port RAM, and the one rule that counts memories
in block RAM units of each target (:func:`bram_blocks`).

A primitive that other blocks instantiate (no ``BlockDef``, no CLI of its own): the line
buffer's ring, the DMA's read FIFO, FIFOs, frame and group buffers.  :func:`banked_ram` is
the same memory read in two register stages when it is LUT RAM deeper than
``BANK_WORDS`` words (the line and frame buffers' rings, for timing).

Ports
-----
clk            clock (no reset: a memory and its read register have none, so synthesis
               can put both into block RAM)
write          write enable: ``mem[waddr] <= wdata`` on the rising edge
waddr, raddr   ``address_bits(depth)`` bits each; must stay below ``depth``
wdata          ``width`` bits
read           read enable: ``rdata`` updates only when high
clear          optional (``None``: no such port): when high with ``read``, ``rdata``
               becomes 0 instead of the word (block RAM's synchronous output reset)
out_enable     optional (``None``: no output register): with it the read has a second
               register stage, ``rdata <= word`` on an edge where ``out_enable`` is high
               (block RAM's output register)
rdata          ``width`` bits, registered: the word of ``raddr`` one enabled cycle after
               ``read`` (two stages with ``out_enable``)

Latency 1 (``read`` to ``rdata``), 2 with ``out_enable``; one read and one write every
cycle.

Parameters
----------
depth : int >= 1
    Words (one word: a register with a 1-bit address that must stay 0).
memory : str or None
    The Verilog memory's name (``name`` is taken by MyHDL).  It is inlined into the
    parent module, so two instances need two names; the default ``None`` names it after
    ``rdata`` (``<rdata's Verilog name>_mem``), unique wherever the RAM is used.
style : "auto" | "block" | "distributed"
    Where the memory goes; ``auto`` resolves by :func:`memory_style` (LUT RAM up to
    ``LUT_RAM_MAX_DEPTH`` words or ``LUT_RAM_MAX_BITS`` bits, block RAM beyond).  The
    Verilog always carries the resolved ``ram_style``, so Yosys follows this rule on every
    target and :func:`bram_blocks` counts what is built.
no_rw_check : bool
    True (default) when the user never reads an address in the cycle it is written (the
    word read is then undefined); Yosys then adds no read-during-write bypass.  False
    keeps read-before-write (the old word), as MyHDL simulates it.

target : "generic" or a device name (``fpga.devices``)
    On an ECP5 device, a block RAM with ``out_enable`` and at most 512 words is built
    from instantiated ``DP16KD`` blocks (512 x 36 each) with the output register
    enabled (``REGMODE_B "OUTREG"``): Yosys maps inferred memories only without it, and
    the block's clock-to-output delay without it (about 5.8 ns in nextpnr's model) caps
    the design below 175 MHz.  The blocks' simulation model is ``DP16KD_sim.v``
    (:func:`sim_files`, :func:`write_sim_files`); ``clear`` is not available there.

MyHDL cannot emit attributes, hence a Verilog template.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path

from myhdl import Signal, always, always_comb, block, intbv

from blocks.dsp_mult import TARGETS, is_ecp5
from blocks.spec import VERILOG_NAME, check_width

STYLES = ("auto", "block", "distributed")
# ``auto``: a block RAM is mostly empty below these sizes (a RAMB18 or DP16KD holds 512
# words at its widest), and LUT RAM of this size costs no more than a few dozen LUTs a bit
# column.  Above either, block RAM.
LUT_RAM_MAX_DEPTH = 64
LUT_RAM_MAX_BITS = 2048

# (depth, width) aspect ratios of one 18 Kb block in simple dual-port use.
# Xilinx 7-series RAMB18E1 (UG473; 36 wide only as SDP); a RAMB36E1 is two of them.
RAMB18_ASPECTS = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
# Lattice ECP5 DP16KD (FPGA-TN-02204; the 36-wide port is its PDPW16KD pseudo-dual-port
# mode, which Yosys counts as the same block).
DP16KD_ASPECTS = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


SIM_MODEL = "DP16KD_sim.v"
DP16KD_DEPTH, DP16KD_WIDTH = 512, 36   # the aspect the instantiated blocks use


def uses_dp16kd(width: int, depth: int, *, style: str = "auto", out_register: bool = False,
                target: str = "generic") -> bool:
    """Whether :func:`ram` instantiates ECP5 ``DP16KD`` blocks for these parameters."""
    return (is_ecp5(target) and out_register
            and depth <= DP16KD_DEPTH and memory_style(width, depth, style) == "block")


def sim_files(width: int, depth: int, **options) -> list[str]:
    """Simulation models the RAM's Verilog needs beside it (file names)."""
    return [SIM_MODEL] if uses_dp16kd(width, depth, **options) else []


def write_sim_files(names, out_dir) -> list[str]:
    """Copy the simulation models ``names`` (from :func:`sim_files`) into ``out_dir``."""
    for name in names:
        shutil.copyfile(Path(__file__).with_name(name), Path(out_dir) / name)
    return list(names)


def address_bits(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


def memory_style(width: int, depth: int, style: str = "auto") -> str:
    """``"block"`` or ``"distributed"``: where a ``width`` x ``depth`` memory goes."""
    if style not in STYLES:
        raise ValueError(f"style: must be one of {', '.join(STYLES)}, got {style!r}")
    if style != "auto":
        return style
    if depth <= LUT_RAM_MAX_DEPTH or width * depth <= LUT_RAM_MAX_BITS:
        return "distributed"
    return "block"


def _tiles(width: int, depth: int, aspects) -> int:
    """Fewest blocks of one aspect ratio that tile the memory."""
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in aspects)


def bram_blocks(width: int, depth: int, *, style: str = "auto") -> dict:
    """Block RAM units of each target for one ``width`` x ``depth`` memory.

    ``{"xilinx": {"RAMB18": a, "RAMB36": b}, "ecp5": {"DP16KD": c}}``.  A memory in LUT
    RAM (:func:`memory_style`) counts 0 blocks.  Otherwise it is tiled by one aspect
    ratio of an 18 Kb block (the one needing fewest blocks, depth and width each rounded
    up); on Xilinx two RAMB18 make a RAMB36, so ``b = n // 2`` and ``a = n % 2``.
    """
    if width < 1 or depth < 1:
        raise ValueError(f"width, depth: must be positive, got {width}, {depth}")
    if memory_style(width, depth, style) == "distributed":
        return {"xilinx": {"RAMB18": 0, "RAMB36": 0}, "ecp5": {"DP16KD": 0}}
    n18 = _tiles(width, depth, RAMB18_ASPECTS)
    return {"xilinx": {"RAMB18": n18 % 2, "RAMB36": n18 // 2},
            "ecp5": {"DP16KD": _tiles(width, depth, DP16KD_ASPECTS)}}


def add_blocks(*counts: dict) -> dict:
    """The sum of several :func:`bram_blocks` results (a block with several memories)."""
    total = {"xilinx": {"RAMB18": 0, "RAMB36": 0}, "ecp5": {"DP16KD": 0}}
    for count in counts:
        for family, cells in count.items():
            for cell, n in cells.items():
                total[family][cell] += n
    # Two RAMB18 of different memories share a RAMB36 site: keep the count in RAMB36 form.
    x = total["xilinx"]
    x["RAMB36"] += x["RAMB18"] // 2
    x["RAMB18"] %= 2
    return total


def block_units(count: dict) -> dict:
    """One number per target: RAMB36 equivalents (RAMB18 = 0.5) and DP16KD blocks,
    the units ``fpga.devices`` budgets are stated in."""
    return {"xilinx": count["xilinx"]["RAMB36"] + count["xilinx"]["RAMB18"] / 2,
            "ecp5": count["ecp5"]["DP16KD"]}


def estimate(*, width: int, depth: int, style: str = "auto") -> dict:
    """Cost of one :func:`ram` (estimate convention of the project).

    Block RAM: the read register is inside the block; no LUTs or FFs.  LUT RAM (Xilinx
    ``synth_xilinx``): RAM32M holds 32 words x 6 bits, RAM64M 64 x 3, in 4 LUT sites each,
    deeper memories a bank per 64 words plus a read multiplexer of one LUT per bit and
    bank; the read register is ``width`` FFs.
    """
    resolved = memory_style(width, depth, style)
    if resolved == "block":
        lut = ff = 0
    else:
        banks = math.ceil(depth / 64)
        per_site = 6 if depth <= 32 else 3
        lut = 4 * math.ceil(width / per_site) * banks + (width * banks if banks > 1 else 0)
        ff = width
    return {"lut": lut, "ff": ff, "dsp": 0, "bram_bits": width * depth,
            "bram": bram_blocks(width, depth, style=style), "latency": 1,
            "cycles": 1, "per": "beat"}


def _check_name(name) -> None:
    if not isinstance(name, str) or not VERILOG_NAME.fullmatch(name):
        raise ValueError(f"memory: must be a Verilog identifier, got {name!r}")


@block
def ram(clk, *, write, waddr, wdata, read, raddr, rdata, depth, memory=None, clear=None,
        out_enable=None, style="auto", no_rw_check=True, target="generic"):
    """Simple dual-port RAM with a registered read; see the module docstring."""
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth: must be a positive integer, got {depth!r}")
    if memory is not None:
        _check_name(memory)
    width = len(rdata)
    check_width("wdata", wdata, width)
    check_width("waddr", waddr, address_bits(depth))
    check_width("raddr", raddr, address_bits(depth))
    resolved = memory_style(width, depth, style)
    staged = out_enable is not None
    cleared = clear is not None
    primitive = uses_dp16kd(width, depth, style=style, out_register=staged, target=target)
    if primitive and cleared:
        raise ValueError("clear: not available with the DP16KD output register")
    attributes = f'ram_style = "{resolved}"' + (", no_rw_check" if no_rw_check else "")
    mem = [Signal(intbv(0)[width:]) for _ in range(depth)]
    top_bit = width - 1
    # The memory's Verilog name: a Signal in the template becomes its Verilog name.
    mem_prefix, mem_suffix = (rdata, "_mem") if memory is None else (memory, "")
    # The template's clear condition and output-register enable.  Set before the
    # generators: MyHDL takes the template's names from the frame as the first generator
    # is made.
    clear_when = clear if cleared else "1'b0"
    out_when = out_enable
    stage = Signal(intbv(0)[width:])     # the first read register when staged
    first = stage if staged else rdata

    @always(clk.posedge)
    def write_port():
        if write:
            mem[waddr].next = wdata

    @always(clk.posedge)
    def read_port():
        if read:
            if cleared and clear:
                first.next = 0
            else:
                first.next = mem[raddr]

    ports = [write_port, read_port]
    if staged:
        @always(clk.posedge)
        def out_port():
            if out_enable:
                rdata.next = stage

        ports.append(out_port)
        out_enable.read = True
        if not primitive:                # the blocks hold the first stage themselves
            stage.driven = "reg"
            stage.read = True
    rdata.driven = "wire" if primitive else "reg"
    for signal in (clk, write, waddr, wdata, read, raddr):
        signal.read = True
    if cleared:
        clear.read = True
    # The Verilog of this instance (MyHDL reads the template after this body ran).
    if primitive:
        ram.verilog_code = _dp16kd_template(width, address_bits(depth))
    else:
        ram.verilog_code = _INFERRED.replace("$READ_TARGET", "$stage" if staged else "$rdata") + (
            _OUTPUT_REGISTER if staged else "")
    return ports


_INFERRED = """
(* $attributes *) reg [$top_bit:0] ${mem_prefix}${mem_suffix} [0:$depth-1];

always @(posedge $clk) begin
    if ($write) begin
        ${mem_prefix}${mem_suffix}[$waddr] <= $wdata;
    end
end

always @(posedge $clk) begin
    if ($read) begin
        if ($clear_when) begin
            $READ_TARGET <= 0;
        end
        else begin
            $READ_TARGET <= ${mem_prefix}${mem_suffix}[$raddr];
        end
    end
end
"""

_OUTPUT_REGISTER = """
always @(posedge $clk) begin
    if ($out_when) begin
        $rdata <= $stage;
    end
end
"""


# LUT RAM words behind one read register: two 16-word slices (ECP5 TRELLIS_DPR16X4) and
# one two-way multiplexer (a bank of 64 words, four slices, placed at 185-196 MHz).
BANK_WORDS = 32


def read_stages(width: int, depth: int) -> int:
    """Register stages of :func:`banked_ram`'s read: 2 for LUT RAM deeper than
    ``BANK_WORDS`` words, else 1."""
    return 2 if memory_style(width, depth) == "distributed" and depth > BANK_WORDS else 1


@block
def bank_gates(we, re, write, read, clear, waddr_hi, raddr_hi, *, index, partial, guard):
    """``we``: a write of bank ``index`` (by the address's high bits).  ``re``: a read
    of it: every read for a full bank (its read enable one gate from the caller's, for
    timing: the bank register picks the word), only its own reads for a ``partial``
    last bank (the low address bits of another bank's word may lie beyond it), and with
    ``guard`` no ``clear`` read (its address may lie beyond the memory)."""
    @always_comb
    def write_gate():
        we.next = write and waddr_hi == index

    @always_comb
    def read_all():
        re.next = read

    @always_comb
    def read_own():
        re.next = read and raddr_hi == index

    @always_comb
    def read_own_real():
        re.next = read and raddr_hi == index and not clear

    if not partial:
        return write_gate, read_all
    return write_gate, (read_own_real if guard and clear is not None else read_own)


@block
def pick2(out, a, b, sel, *, bit):
    """``out = b if sel[bit] else a``."""
    @always_comb
    def choose():
        if sel[bit]:
            out.next = b
        else:
            out.next = a
    return choose


@block
def banked_ram(clk, *, write, waddr, wdata, read, raddr, clear, advance, rdata, depth,
               guard=False, write_stage=False):
    """``blocks.ram.ram`` read in one register stage, or in two (:func:`read_stages`).

    Two stages: the memory is cut into banks of ``BANK_WORDS`` words, each with its own
    read register (stage one: ``read`` of the bank ``raddr`` falls in); ``rdata`` (stage
    two) takes the bank's word, or 0 for a ``clear`` read, on an edge where ``advance``
    is high (timing: a deep LUT RAM's read multiplexer is split by a register; the
    extra flip-flops are about ``width * depth / BANK_WORDS``).  Same ports as ``ram`` otherwise;
    ``advance`` is unused with one stage.  ``guard``: a ``clear`` read's address may lie
    beyond ``depth`` (it reads no bank then).  ``write_stage``: with two read stages,
    a write takes effect a cycle later, from registers (timing: the banks' write enables
    one gate after flip-flops); the caller reads no word in the cycle after writing it.
    """
    width = len(rdata)
    if read_stages(width, depth) == 1:
        return ram(clk, write=write, waddr=waddr, wdata=wdata, read=read, raddr=raddr,
                   clear=clear, rdata=rdata, depth=depth)
    n, low = len(raddr), BANK_WORDS.bit_length() - 1
    banks = -(-depth // BANK_WORDS)
    parts = []
    if write_stage:
        write_in, waddr_in, wdata_in = write, waddr, wdata
        write, waddr, wdata = Signal(bool(0)), Signal(intbv(0)[n:]), Signal(intbv(0)[width:])
        write_r, waddr_r, wdata_r = write, waddr, wdata

        @always(clk.posedge)    # no reset: ``write`` is low in reset
        def write_register():
            write_r.next = write_in
            waddr_r.next = waddr_in
            wdata_r.next = wdata_in
        parts.append(write_register)
    waddr_hi, raddr_hi = waddr(n, low), raddr(n, low)
    bank = Signal(intbv(0)[n - low:])          # the bank of the word in stage one
    cleared = Signal(bool(0))                  # ... and whether it reads 0
    level = []
    for b in range(banks):
        size = min(BANK_WORDS, depth - b * BANK_WORDS)
        bits = address_bits(size)
        we, re, word = Signal(bool(0)), Signal(bool(0)), Signal(intbv(0)[width:])
        parts += [bank_gates(we, re, write, read, clear, waddr_hi, raddr_hi, index=b,
                             partial=size < BANK_WORDS, guard=guard),
                  ram(clk, write=we, waddr=waddr(bits, 0), wdata=wdata, read=re,
                      raddr=raddr(bits, 0), rdata=word, depth=size)]
        level.append(word)
    bit = 0
    while len(level) > 1:                      # a tree of two-way multiplexers
        pairs = []
        for i in range(0, len(level) - 1, 2):
            out = Signal(intbv(0)[width:])
            parts.append(pick2(out, level[i], level[i + 1], bank, bit=bit))
            pairs.append(out)
        level = pairs + level[len(level) - len(level) % 2:]
        bit += 1
    picked = level[0]

    if clear is None:
        @always(clk.posedge)    # no reset, like the memory's own registers
        def stages():
            if read:
                bank.next = raddr_hi
            if advance:
                rdata.next = picked
        return parts, stages

    @always(clk.posedge)
    def stages_cleared():
        if read:
            bank.next = raddr_hi
            cleared.next = clear
        if advance:
            if cleared:
                rdata.next = 0
            else:
                rdata.next = picked
    return parts, stages_cleared


def _dp16kd_template(width: int, abits: int) -> str:
    """Instances of DP16KD, 512 x 36 each (pseudo dual port: A writes, B reads), with
    the read port's output register.

    Pins as Yosys' own ECP5 mapping connects a 36-bit port: data bits 0..17 on DIA/DOA,
    18..35 on DIB/DOB; the word address on AD*5..AD*13; for writes AD*0..AD*3 are the
    four 9-bit byte enables (all set).
    """
    def bit(signal, i, bits):
        return f"${signal}[{i}]" if i < bits else "1'b0"

    blocks = []
    for b in range(math.ceil(width / DP16KD_WIDTH)):
        pins = [".CLKA($clk)", ".WEA(1'b1)", ".CEA($write)", ".OCEA(1'b0)", ".RSTA(1'b0)",
                ".CLKB($clk)", ".WEB(1'b0)", ".CEB($read)", ".OCEB($out_when)", ".RSTB(1'b0)"]
        pins += [f".CS{p}{i}(1'b0)" for p in "AB" for i in range(3)]
        pins += [f".ADA{i}(1'b1)" for i in range(4)] + [".ADA4(1'b0)"]
        pins += [f".ADB{i}(1'b0)" for i in range(5)]
        pins += [f".ADA{5 + i}({bit('waddr', i, abits)})" for i in range(9)]
        pins += [f".ADB{5 + i}({bit('raddr', i, abits)})" for i in range(9)]
        for i in range(DP16KD_WIDTH):
            port, pin, k = "AB"[i // 18], i % 18, b * DP16KD_WIDTH + i
            pins.append(f".DI{port}{pin}({bit('wdata', k, width)})")
            pins.append(f".DO{port}{pin}(" + (f"$rdata[{k}]" if k < width else "") + ")")
        blocks.append(
            "DP16KD #(.DATA_WIDTH_A(36), .DATA_WIDTH_B(36), .REGMODE_A(\"NOREG\"), "
            ".REGMODE_B(\"OUTREG\"), .RESETMODE(\"SYNC\"), .ASYNC_RESET_RELEASE(\"SYNC\"), "
            ".CSDECODE_A(\"0b000\"), .CSDECODE_B(\"0b000\"), .GSR(\"DISABLED\"))\n"
            f"${{mem_prefix}}${{mem_suffix}}_{b} (\n    " + ",\n    ".join(pins) + "\n);\n")
    # Data-out pins beyond the width stay open.
    return ("\n/* verilator lint_off PINCONNECTEMPTY */\n" + "\n".join(blocks)
            + "/* verilator lint_on PINCONNECTEMPTY */\n")
