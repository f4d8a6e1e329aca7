"""Read the tools' JSON outputs into plain resource dictionaries.

* Yosys ``stat -json``: cell counts by type, and declared memory bits.
* The per-family tallies turn cell types into the budgeted resources (``lut``, ``ff``,
  ``dsp``, ``bram_blocks``) of ``fpga.devices``.
* nextpnr ``--report``: utilisation of each site type, achieved Fmax per clock and the
  critical paths (we read this JSON, never the human log).

Everything here is pure parsing: tests feed it stored tool outputs (tests/fpga/data/).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

# --- Yosys ---------------------------------------------------------------------------


def yosys_stat(stat) -> dict:
    """``{"cells": {type: n}, "memory_bits": n}`` from ``stat -json`` output (path or dict).

    Works with Yosys 0.23 (Debian) and 0.70 (yowasp); uses the ``design`` totals, which
    include every module below the top.
    """
    data = load_json(stat)
    design = data.get("design") or next(iter(data["modules"].values()))
    return {"cells": dict(design.get("num_cells_by_type", {})),
            "memory_bits": int(design.get("num_memory_bits", 0))}


# Xilinx 7-series / UltraScale+ primitives and how many LUT6 sites each one occupies.
XILINX_LOGIC_LUTS = {"LUT1": 1, "LUT2": 1, "LUT3": 1, "LUT4": 1, "LUT5": 1, "LUT6": 1,
                     "LUT6_2": 1, "INV": 1}   # Vivado implements a lone INV as a LUT1
XILINX_MEMORY_LUTS = {"SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1,
                      "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4,
                      "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8,
                      "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8}
XILINX_FFS = ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE")
XILINX_DSPS = ("DSP48E1", "DSP48E2")
XILINX_BRAM36 = ("RAMB36E1", "RAMB36E2")
XILINX_BRAM18 = ("RAMB18E1", "RAMB18E2")


def xilinx_resources(cells: dict) -> dict:
    """Budgeted resources from ``synth_xilinx`` cells; ``bram_blocks`` in RAMB36 units."""
    logic = sum(n * XILINX_LOGIC_LUTS[t] for t, n in cells.items() if t in XILINX_LOGIC_LUTS)
    memory = sum(n * XILINX_MEMORY_LUTS[t] for t, n in cells.items() if t in XILINX_MEMORY_LUTS)
    bram18 = _sum(cells, XILINX_BRAM18)
    bram36 = _sum(cells, XILINX_BRAM36)
    return {"lut": logic + memory, "lut_as_memory": memory, "ff": _sum(cells, XILINX_FFS),
            "dsp": _sum(cells, XILINX_DSPS), "bram_blocks": bram36 + bram18 / 2,
            "bram18": bram18, "bram36": bram36,
            "carry": _sum(cells, ("CARRY4", "CARRY8"))}


def ecp5_resources(cells: dict) -> dict:
    """Budgeted resources from ``synth_ecp5`` cells (before placement).

    A CCU2C carry cell is two LUT4s and a TRELLIS_DPR16X4 distributed RAM uses the LUTs of
    two slices (four LUT4s' worth of sites in nextpnr's TRELLIS_COMB count, plus RAMW).
    """
    lut = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0) + 4 * cells.get("TRELLIS_DPR16X4", 0)
    return {"lut": lut, "ff": cells.get("TRELLIS_FF", 0),
            "dsp": cells.get("MULT18X18D", 0), "bram_blocks": cells.get("DP16KD", 0),
            "alu54": cells.get("ALU54B", 0)}


def ice40_resources(cells: dict) -> dict:
    """Budgeted resources from ``synth_ice40`` cells (before placement)."""
    ffs = sum(n for t, n in cells.items() if t.startswith("SB_DFF"))
    return {"lut": cells.get("SB_LUT4", 0), "ff": ffs, "dsp": cells.get("SB_MAC16", 0),
            "bram_blocks": cells.get("SB_RAM40_4K", 0),
            "spram_blocks": cells.get("SB_SPRAM256KA", 0)}


FAMILY_RESOURCES = {"xilinx": xilinx_resources, "ecp5": ecp5_resources,
                    "ice40": ice40_resources}

# nextpnr site types that correspond to the budgeted resources, per family.
PLACED_SITES = {
    "ecp5": {"lut": "TRELLIS_COMB", "ff": "TRELLIS_FF", "dsp": "MULT18X18D",
             "bram_blocks": "DP16KD"},
    "ice40": {"dsp": "ICESTORM_DSP", "bram_blocks": "ICESTORM_RAM"},
}


def yosys_error(log_text: str) -> str:
    """The first ``ERROR:`` line of a Yosys log, in one line (``file.v:2: syntax error``)."""
    for line in log_text.splitlines():
        if "ERROR:" in line:
            before, _, after = line.partition("ERROR:")
            return (before + after.strip()).strip()
    tail = [line for line in log_text.splitlines() if line.strip()]
    return tail[-1].strip() if tail else "no output"


# --- nextpnr -------------------------------------------------------------------------


def nextpnr_report(report) -> dict:
    """Fmax, utilisation and the critical path from a nextpnr ``--report`` JSON.

    Returns ``{"utilization": {site: {"used", "available"}}, "clocks": {name: {"fmax_mhz",
    "constraint_mhz"}}, "critical_paths": [summary, ...]}``.
    """
    data = load_json(report)
    clocks = {name: {"fmax_mhz": float(v["achieved"]), "constraint_mhz": float(v["constraint"])}
              for name, v in data.get("fmax", {}).items()}
    paths = [critical_path_summary(p) for p in data.get("critical_paths", [])]
    return {"utilization": data.get("utilization", {}), "clocks": clocks,
            "critical_paths": paths}


def critical_path_summary(path: dict) -> dict:
    """One critical path in a few fields: end points, logic levels, delays, source lines."""
    steps = path.get("path", [])
    logic_ns = sum(s["delay"] for s in steps if s.get("type") != "routing")
    routing_ns = sum(s["delay"] for s in steps if s.get("type") == "routing")
    sources = []
    for step in steps:
        for src in step.get("sources", []):
            short = re.sub(r"\.\d+-\d+\.\d+$", "", src.split("/")[-1])   # file.v:41
            if short not in sources:
                sources.append(short)
    return {
        "from_clock": path.get("from", ""), "to_clock": path.get("to", ""),
        "start": steps[0]["from"]["cell"] if steps else "",
        "end": steps[-1]["to"]["cell"] if steps else "",
        "logic_levels": sum(1 for s in steps if s.get("type") == "logic"),
        "logic_ns": round(logic_ns, 3), "routing_ns": round(routing_ns, 3),
        "delay_ns": round(logic_ns + routing_ns, 3),
        "nets": [s["net"] for s in steps if s.get("type") == "routing" and "net" in s],
        "sources": sources,
    }


def worst_clock(clocks: dict) -> tuple[str, dict] | None:
    """The clock with the lowest achieved Fmax, or ``None`` for a design without clocks."""
    if not clocks:
        return None
    return min(clocks.items(), key=lambda item: item[1]["fmax_mhz"])


def nextpnr_error(log_text: str) -> str:
    """The first ``ERROR:`` line of a nextpnr log."""
    return yosys_error(log_text)


def is_capacity_error(message: str) -> bool:
    """Whether a nextpnr error means the design does not fit (rather than a tool bug)."""
    return bool(re.search(r"Unable to (find a placement location|place cell)|"
                          r"no BELs remaining|Design uses \d+ .* but only", message))


def _sum(cells: dict, types) -> int:
    return sum(cells.get(t, 0) for t in types)


def load_json(source):
    if isinstance(source, dict):
        return source
    return json.loads(Path(source).read_text())
