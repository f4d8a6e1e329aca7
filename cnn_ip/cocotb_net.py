"""The cocotb test bench of a network top (run by ``cnn-ip simulate``, never imported by it).

The simulator process loads this module; ``cnn_ip.simulate_cmd`` writes a job file and
names it in ``CNN_IP_SIM_JOB``::

    {"frames": [[beat, ...], ...],   # s_axis_img beats of each frame (one pixel a beat)
     "steady": M,                    # then M more frames (the first M again) without stalls
     "frame_timeout": T,             # cycles to wait for one output frame before giving up
     "idle": p, "stall": q, "seed": s, "period_ns": T, "reset_cycles": R,
     "result": "path/of/result.json"}

Phase 1 sends every frame back to back with random idle cycles on ``s_axis_img``
(cocotbext-axi ``AxiStreamSource``) and random back-pressure on ``m_axis_out``
(``AxiStreamSink``), both from seeded pause generators.  Phase 2 sends ``steady`` frames
with neither, so the time between successive output frames is the pipeline's
steady-state period.  The result file holds every output frame's beats (``tlast`` ends
a frame) and the cycle on which each frame's last beat moved.
"""
from __future__ import annotations

import json
import os
import random
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time, get_time_from_sim_steps
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource


def pauses(rng: random.Random, probability: float):
    """An endless pause pattern: ``True`` (pause) with ``probability`` each cycle."""
    while True:
        yield rng.random() < probability


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

    rng = random.Random(job["seed"])
    source.set_pause_generator(pauses(rng, job["idle"]))
    sink.set_pause_generator(pauses(rng, job["stall"]))
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
        await through(frames[:job["steady"]])
    except SimTimeoutError:
        timeout = True  # the frames so far are reported; the caller counts the rest missing
    await ClockCycles(dut.aclk, 16)
    extra = not sink.empty()
    cycles = get_sim_time(unit="ns") / period
    wall = time.perf_counter() - wall

    result = {"frames": out, "stalled_frames": len(frames), "extra_beats": extra,
              "end_cycles": [get_time_from_sim_steps(t, "ns") / period for t in ends],
              "timeout": timeout, "cycles": cycles, "wall_s": wall}
    with open(job["result"], "w") as handle:
        json.dump(result, handle)
