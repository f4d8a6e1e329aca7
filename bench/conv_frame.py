"""Cycles per frame of the frame conv stage (``assemblies.conv_frame``): measured in
simulation against Contract 7's figure (``conv_frame.cycles_per_frame``).

Each geometry is a random layer; its weight image sits in ``cnn_ip.simkit.axi_memory``
(fixed latency, no pauses: the memory ``bench/tile_dma.py`` measured the DMA's rate on);
frames follow each other back to back and the output never stalls.  Measured: cycles
between the ``tlast`` beats of the last three frames, halved (with an odd number of
groups the weight banks alternate between frames).  Also prints the off-chip bytes a frame
(``rd_bytes`` over the run / frames) beside the planned ones.

    .venv/bin/python bench/conv_frame.py                 # MyHDL
    .venv/bin/python bench/conv_frame.py --hdl icarus
"""
from __future__ import annotations

import argparse
import tempfile

import numpy as np
from myhdl import StopSimulation, block, instance

from assemblies import conv_frame as cf
from cnn_ip.cosim import dut
from blocks.stream import unpack
from cnn_ip.simkit import axi_memory, axis_sink, axis_source, clock_reset_driver

# name: (layer, stage options); compute-bound with one and two buffers, input-bound,
# and fetch-bound (1 x 1 and 2 x 2 maps, a group computes in 1-72 cycles) with the DMA's
# bursts long and short, one or several in flight.
GEOMETRIES = {
    "8x8x8 k3p1 ternary L4 S4 G2 b1": (
        dict(cin=8, height=8, width=8, cout=8, k=3, pad=1, weights="ternary"),
        dict(lanes=4, simd=4, lanes_in=4, buffers=1)),
    "6x6x8 k3p1 int4 L2 S8 G3 b2": (
        dict(cin=8, height=6, width=6, cout=6, k=3, pad=1, weights="int4"),
        dict(lanes=2, simd=8, lanes_in=8, buffers=2)),
    "8x8x24 k1s2 binary L8 S8 G2 b2": (
        dict(cin=24, height=8, width=8, cout=16, k=1, stride=2, weights="binary"),
        dict(lanes=8, simd=8, lanes_in=2, buffers=2)),
    "1x1x48 k1 int8 L4 S16 G2 b2": (
        dict(cin=48, height=1, width=1, cout=8, k=1, weights="int8", act_bits=8),
        dict(lanes=4, simd=16, lanes_in=16, buffers=2)),
    "1x1x32 k1 int8 L4 S32 G2 b1": (
        dict(cin=32, height=1, width=1, cout=8, k=1, weights="int8", act_bits=8),
        dict(lanes=4, simd=32, lanes_in=32, buffers=1)),
    "2x2x32 k3p1 int8 L4 S32 G2 b2, bus 32, bursts of 2, 1 out": (
        dict(cin=32, height=2, width=2, cout=8, k=3, pad=1, weights="int8", act_bits=8),
        dict(lanes=4, simd=32, lanes_in=32, buffers=2, bus_bits=32, max_burst=2,
             outstanding=1)),
    "2x2x32 k3p1 ternary L4 S16 G4 b2, bus 128, bursts of 1": (
        dict(cin=32, height=2, width=2, cout=16, k=3, pad=1, weights="ternary"),
        dict(lanes=4, simd=16, lanes_in=32, buffers=2, bus_bits=128, max_burst=1)),
}
LATENCY = cf.MEMORY_LATENCY    # memory: AR handshake to first R beat, as planned


def measure(layer_cfg: dict, stage: dict, *, frames: int = 5, hdl: str = "myhdl") -> dict:
    rng = np.random.default_rng(1)
    layer = cf.cr.random_layer(rng, **{"act": "relu", "act_bits": 4, **layer_cfg})
    _, args = cf.BLOCK.prepared(layer=layer, abits=8, **stage)
    x = rng.integers(0, 256, size=(frames, *np.roll(layer.in_shape, -1)))
    beats = cf.input_beats(x, lanes_in=args["lanes_in"], abits=8)
    image, _ = cf.memory_image(args)
    memory = bytearray(image) + bytearray(64)
    expected, _ = cf.golden(x, **args)
    ports = cf.BLOCK.ports(**args)
    aclk, aresetn = ports["aclk"], ports["aresetn"]
    received, sent, state = [], [], {}
    workdir = tempfile.mkdtemp(prefix="conv_frame-bench-") if hdl == "icarus" else None

    @block
    def bench():
        parts = [clock_reset_driver(aclk, aresetn),
                 dut(cf.BLOCK, ports, hdl=hdl, args=args, workdir=workdir),
                 axis_source(aclk, aresetn, ports["s_axis_in"], beats, moved=sent),
                 axis_sink(aclk, aresetn, ports["m_axis_out"], received),
                 axi_memory(aclk, aresetn, ports["m_axi"], memory, data_bits=args["bus_bits"],
                            latency=LATENCY)]

        @instance
        def stopper():
            while len(received) < len(expected):
                yield aclk.posedge
            state["rd_bytes"] = int(ports["rd_bytes"])
            raise StopSimulation

        return parts, stopper

    bench().run_sim(quiet=True)
    ends = [b.cycle for b in received if b.last]
    bits = cf.cr.out_bits(args)
    got = np.array([unpack(b.data, bits, args["lanes"]) for b in received])
    return {"measured": (ends[-1] - ends[-3]) / 2, "planned": cf.cycles_per_frame(args),
            "latency": received[0].cycle - sent[0].cycle,
            "planned_latency": cf.estimate(**args)["latency"],
            "exact": bool((got == expected).all()), "bytes": state["rd_bytes"] / frames,
            "planned_bytes": cf.estimate(**args)["offchip_bytes"]}


def table(hdl: str) -> list[str]:
    lines = [f"conv_frame, {hdl}; memory latency {LATENCY} cycles, no stalls, 5 frames; "
             "planned: the DMA's bursts as tile_dma.ReadTimeline places them", "",
             "| geometry | F | R | fetch/group | compute/group | planned | measured | "
             "bound | latency planned | measured | bit-exact | bytes/frame (planned) |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|"]
    for name, (layer_cfg, stage) in GEOMETRIES.items():
        r = measure(layer_cfg, stage, hdl=hdl)
        p = r["planned"]
        lines.append(f"| {name} | {p['input']} | {p['reads']} | {max(p['fetch'])} | "
                     f"{p['group_compute']} | {p['cycles']} | {r['measured']:g} | {p['bound']} | "
                     f"{r['planned_latency']} | {r['latency']} | {'yes' if r['exact'] else 'NO'} | {r['bytes']:g} ({r['planned_bytes']}) |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hdl", choices=("myhdl", "icarus"), default="myhdl")
    args = parser.parse_args(argv)
    print("\n".join(table(args.hdl)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
