"""The cocotb test bench of a network top (run by ``cnn-ip simulate``, never imported by it).

The simulator process loads this module; ``cnn_ip.simulate_cmd`` writes a job file and
names it in ``CNN_IP_SIM_JOB``::

    {"frames": [[beat, ...], ...],   # s_axis_img beats of each frame (one pixel a beat)
     "steady": M,                    # then M more frames (the first M again) without stalls
     "frame_timeout": T,             # cycles to wait for one output frame before giving up
     "idle": p, "stall": q, "seed": s, "period_ns": T, "reset_cycles": R,
     "memory": {"file": "weights.bin", "base": B, "size": bytes} or null,
     "axi": [{"prefix": "m_axi_<layer>", "rd_bytes": "<layer>_rd_bytes"}, ...],
     "axi_pause": a, "result": "path/of/result.json"}

Phase 1 sends every frame back to back with random idle cycles on ``s_axis_img``
(cocotbext-axi ``AxiStreamSource``) and random back-pressure on ``m_axis_out``
(``AxiStreamSink``), both from seeded pause generators.  Phase 2 sends ``steady`` frames
with neither, so the time between successive output frames is the pipeline's
steady-state period.  The result file holds every output frame's beats (``tlast`` ends
a frame) and the cycle on which each frame's last beat moved.

Each frame stage's AXI master (``axi``) gets its own cocotbext-axi ``AxiRam`` holding
``weights.bin`` at ``base``; in phase 1 every one of its five channels (AR, R, AW, W, B)
pauses with probability ``axi_pause`` a cycle (seeded), so reads meet random latencies
and gaps.  After the last frame the result adds each stage's ``rd_bytes`` and the top's
``error``.
"""
from __future__ import annotations

import json
import logging
import os
import random
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time, get_time_from_sim_steps
from cocotbext.axi import (AxiBus, AxiRam, AxiStreamBus, AxiStreamFrame, AxiStreamSink,
                           AxiStreamSource)


def pauses(rng: random.Random, probability: float):
    """An endless pause pattern: ``True`` (pause) with ``probability`` each cycle."""
    while True:
        yield rng.random() < probability


def memories(dut, job) -> list:
    """One ``AxiRam`` per frame stage, loaded with weights.bin at its base."""
    if not job.get("axi"):
        return []
    memory = job["memory"]
    with open(memory["file"], "rb") as handle:
        image = handle.read()
    rams = []
    for port in job["axi"]:
        ram = AxiRam(AxiBus.from_prefix(dut, port["prefix"]), dut.aclk, dut.aresetn,
                     reset_active_level=False, size=memory["size"])
        ram.write(memory["base"], image)
        for side in (ram.read_if, ram.write_if):
            side.log.setLevel(logging.WARNING)  # a line a burst slows the run and floods sim.log
        rams.append(ram)
    return rams


def channels(ram) -> list:
    return [ram.read_if.ar_channel, ram.read_if.r_channel, ram.write_if.aw_channel,
            ram.write_if.w_channel, ram.write_if.b_channel]


SETTLE_CYCLES = 256      # a byte counter unchanged this long has counted its last read


async def settled(dut, names: list, limit: int = 64) -> list:
    """The byte counters once none changed for ``SETTLE_CYCLES`` (at most ``limit`` such
    waits): reads still in flight after the last output frame are counted too."""
    counts = [int(getattr(dut, name).value) for name in names]
    for _ in range(limit if names else 0):
        await ClockCycles(dut.aclk, SETTLE_CYCLES)
        now = [int(getattr(dut, name).value) for name in names]
        if now == counts:
            break
        counts = now
    return counts


@cocotb.test()
async def network(dut):
    with open(os.environ["CNN_IP_SIM_JOB"]) as handle:
        job = json.load(handle)
    period = job["period_ns"]
    cocotb.start_soon(Clock(dut.aclk, period, unit="ns").start())
    # byte_lanes=1: a beat is one integer however wide tdata is (lanes are unpacked later)
    source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_img"), dut.aclk,
                             dut.aresetn, reset_active_level=False, byte_lanes=1)
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_out"), dut.aclk,
                         dut.aresetn, reset_active_level=False, byte_lanes=1)
    dut.aresetn.value = 0
    await ClockCycles(dut.aclk, job["reset_cycles"])
    dut.aresetn.value = 1
    await ClockCycles(dut.aclk, 2)

    rams = memories(dut, job)
    rng = random.Random(job["seed"])
    source.set_pause_generator(pauses(rng, job["idle"]))
    sink.set_pause_generator(pauses(rng, job["stall"]))
    for ram in rams:
        for channel in channels(ram):
            channel.set_pause_generator(pauses(rng, job.get("axi_pause", 0.0)))
    frames = job["frames"]
    wall = time.perf_counter()
    out, ends = [], []

    async def through(batch):
        for beats in batch:
            source.send_nowait(AxiStreamFrame(beats))
        for _ in batch:
            frame = await with_timeout(sink.recv(), job["frame_timeout"] * period, "ns")
            out.append([int(v) for v in frame.tdata])
            ends.append(frame.sim_time_end)

    timeout = False
    try:
        await through(frames)
        source.clear_pause_generator()
        sink.clear_pause_generator()
        source.pause = sink.pause = False
        for ram in rams:
            for channel in channels(ram):
                channel.clear_pause_generator()
                channel.pause = False
        await through(frames[:job["steady"]])
    except SimTimeoutError:
        timeout = True  # the frames so far are reported; the caller counts the rest missing
    await ClockCycles(dut.aclk, 16)
    extra = not sink.empty()
    rd_bytes = await settled(dut, [port["rd_bytes"] for port in job.get("axi", [])])
    cycles = get_sim_time(unit="ns") / period
    wall = time.perf_counter() - wall

    rd_bytes = {port["prefix"]: count for port, count in zip(job.get("axi", []), rd_bytes)}
    error = bool(int(dut.error.value)) if job.get("axi") else False
    result = {"frames": out, "stalled_frames": len(frames), "extra_beats": extra,
              "rd_bytes": rd_bytes, "error": error,
              "end_cycles": [get_time_from_sim_steps(t, "ns") / period for t in ends],
              "timeout": timeout, "cycles": cycles, "wall_s": wall}
    with open(job["result"], "w") as handle:
        json.dump(result, handle)
