"""What ``cnn-ip assemble`` reports: ``assemble_report.json``, the terminal table and the
per-layer plot, all from one :func:`build` dictionary (so the three always agree)."""
from __future__ import annotations

from pathlib import Path

from cnn_ip.planner import BRAM_UNITS, RESOURCES

COLUMNS = ("layer", "type", "flow", "L", "S", "cycles/frame", "LUT", "FF", "DSP", "BRAM",
           "off-chip B")


def _bram_value(value):
    return int(value) if float(value).is_integer() else float(value)


def build(result, *, source: str, seed=None, rtl_dir=None) -> dict:
    """The report of a planned network (and of its RTL when ``rtl_dir`` holds it)."""
    plan, device = result.plan, result.device
    unit = BRAM_UNITS[device.family]
    fp32_bits = 32 * sum(int(s.int_layer.W.size + s.int_layer.bias.size)
                         for s in result.stages if s.layer.has_weights)
    planned_bits = result.model_bits
    built_bits = planned_bits
    if rtl_dir is not None:
        from quant.rom_image import model_bits
        built_bits = model_bits(rtl_dir)
    layers = []
    for k, s in enumerate(result.stages):
        layers.append({
            "name": s.name, "type": s.layer.type, "dataflow": s.dataflow,
            "lanes": s.lanes, "simd": s.simd, "cycles": s.cycles, "terms": s.terms,
            "lut": s.cost["lut"], "ff": s.cost["ff"], "dsp": s.cost["dsp"],
            "bram": _bram_value(s.cost["bram"]), "bram_bits": s.cost["bram_bits"],
            "offchip_bytes": s.offchip_bytes, "model_bits": s.model_bits,
            "buffers": s.buffers, "lanes_in": s.lanes_in, "groups_in": s.groups_in,
            "bound": s.bound,
            "fifo_depth": s.fifo_depth, "bottleneck": k == result.bottleneck,
            "why": s.why, "parts": s.parts,
            "weights": s.layer.weights, "act_bits": s.layer.act_bits,
            "in_shape": list(s.layer.in_shape), "out_shape": list(s.layer.out_shape)})
    links = [{"before": link["before"], "lanes_in": link["lanes_in"],
              "lanes_out": link["lanes_out"], "bits": link["bits"],
              "fifo_depth": link["fifo_depth"], **{r: _bram_value(link["cost"][r]) if r == "bram"
                                                   else link["cost"][r] for r in RESOURCES}}
             for link in result.links]
    totals = {r: _bram_value(result.totals[r]) if r == "bram" else result.totals[r]
              for r in RESOURCES}
    have = {"lut": device.lut, "ff": device.ff, "dsp": device.dsp, "bram": device.bram_blocks}
    bottleneck = result.stages[result.bottleneck]
    ops = 2 * result.macs_per_frame
    notes = list(result.notes)
    if source == "random-weights":
        notes.insert(0, f"random weights (seed {seed}) at each layer's sparsity (auto: the "
                     "search's starting point), constants keeping random inputs inside the "
                     "activation ranges: hardware exploration, not a trained model")
    return {
        "format": "cnn_ip.assemble_report/1",
        "plan": plan.name, "model": source,
        "device": {"name": device.name, "part": device.part, "family": device.family,
                   "bram_unit": unit, **have},
        "clock_mhz": plan.clock_mhz, "target_fps": plan.target_fps,
        "target_met": result.target_met, "limits": plan.limits, "budget": result.budget,
        "cycles_per_frame": result.cycles, "fps": round(result.fps, 3),
        "ops_per_frame": ops, "gops": round(ops * result.fps / 1e9, 3),
        "bottleneck": {"layer": bottleneck.name, "cycles": bottleneck.cycles,
                       "terms": bottleneck.terms},
        "rate_limit": result.rate_limit,
        "image_cycles": plan.input_shape[1] * plan.input_shape[2],
        "totals": totals, "use": {r: round(totals[r] / have[r], 4) for r in RESOURCES},
        "offchip_bytes_per_frame": result.offchip_bytes,
        "offchip_mb_per_frame": round(result.offchip_bytes / 1e6, 6),
        "flows": flows(result),
        "model_bits": {"planned": planned_bits, "built": built_bits if rtl_dir else None,
                       "fp32": fp32_bits,
                       "compression": round(fp32_bits / built_bits, 3) if built_bits else None},
        "layers": layers, "links": links, "notes": notes,
    }


def flows(result) -> dict:
    """The planned mix beside the same network all-row and all-frame (``planner.one_flow``):
    fits or not, block RAM, off-chip bytes per frame, frames per second."""
    mix = {"fits": True, "cycles": result.cycles, "fps": round(result.fps, 3),
           "bram": _bram_value(result.totals["bram"]), "bram_bits": result.totals["bram_bits"],
           "lut": result.totals["lut"], "dsp": result.totals["dsp"],
           "offchip_bytes": result.offchip_bytes,
           "flows": [s.dataflow for s in result.stages if s.layer.has_weights]}
    out = {"planned": mix}
    for flow, entry in (result.comparison or {}).items():
        out[f"all-{flow}"] = ({**entry, "bram": _bram_value(entry["bram"])} if entry["fits"]
                              else dict(entry))
    return out


def flow_lines(data: dict) -> list[str]:
    """The comparison of data flows, one line each."""
    unit = data["device"]["bram_unit"]
    lines = []
    for name, entry in data["flows"].items():
        if entry["fits"]:
            lines.append(f"  {name:<10} fits: {_fmt(entry['bram'])} {unit} block RAM, "
                         f"{entry['offchip_bytes'] / 1e6:,.3f} MB off-chip a frame, "
                         f"{entry['fps']:,.2f} frames/s, {_fmt(entry['lut'])} LUT")
        else:
            lines.append(f"  {name:<10} does not fit: {entry['why']}")
    return lines


def _fmt(value) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def table(data: dict) -> str:
    """The terminal table: one row a layer, then totals against the device."""
    rows = [COLUMNS]
    for layer in data["layers"]:
        mark = " *" if layer["bottleneck"] else ""
        flow = layer["dataflow"] + (f"/{layer['buffers']}" if layer["buffers"] else "")
        rows.append((layer["name"] + mark, layer["type"], flow, str(layer["lanes"]),
                     str(layer["simd"]), _fmt(layer["cycles"]), _fmt(layer["lut"]),
                     _fmt(layer["ff"]), _fmt(layer["dsp"]), _fmt(layer["bram"]),
                     _fmt(layer["offchip_bytes"])))
    links = data["links"]
    rows.append(("links", "fifo/adapt", "", "", "", "", _fmt(sum(x["lut"] for x in links)),
                 _fmt(sum(x["ff"] for x in links)), _fmt(sum(x["dsp"] for x in links)),
                 _fmt(sum(x["bram"] for x in links)), "0"))
    t, dev = data["totals"], data["device"]
    rows.append(("total", "", "", "", "", _fmt(data["cycles_per_frame"]), _fmt(t["lut"]),
                 _fmt(t["ff"]), _fmt(t["dsp"]), _fmt(t["bram"]),
                 _fmt(data["offchip_bytes_per_frame"])))
    rows.append((dev["name"], "", "", "", "", "", _fmt(dev["lut"]), _fmt(dev["ff"]),
                 _fmt(dev["dsp"]), _fmt(dev["bram"]), ""))
    use = data["use"]
    rows.append(("use", "", "", "", "", "", *(f"{use[r]:.1%}" for r in RESOURCES), ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0 or n == len(data["layers"]) + 1:
            lines.append("-" * len(lines[0]))
    bits = data["model_bits"]
    b = data["bottleneck"]
    lines += [
        f"BRAM in {dev['bram_unit']}; * bottleneck: {b['layer']} "
        f"({b['cycles']:,} cycles/frame; input {b['terms']['input']:,}, compute "
        f"{b['terms']['compute']:,}, output {b['terms']['output']:,}"
        + (f", waiting on the stages around it {b['terms']['wait']:,}" if b["terms"].get("wait")
           else "") + ")",
        f"{data['fps']:,.1f} frames/s at {data['clock_mhz']:g} MHz "
        f"({data['cycles_per_frame']:,} cycles/frame), {data['gops']:,.1f} GOP/s "
        f"({data['ops_per_frame'] / 1e9:.4g} GOP a frame)"
        + ("" if data["target_fps"] is None else
           f"; target {data['target_fps']:g} fps {'met' if data['target_met'] else 'NOT met'}"),
        f"rate limited by {data['rate_limit']}",
        f"off-chip {data['offchip_bytes_per_frame']:,} B a frame "
        f"({data['offchip_mb_per_frame']:,.3f} MB; frame/N: a frame stage holding N input maps)",
        f"model {(bits['built'] or bits['planned']):,} bits "
        f"{'as built' if bits['built'] else 'as planned'} "
        f"(fp32 {bits['fp32']:,} bits: compression {bits['compression']}x)",
    ]
    if len(data["flows"]) > 1:
        lines.append("data flows compared:")
        lines += flow_lines(data)
    lines += [f"note: {note}" for note in data["notes"]]
    lines.append("why:")
    lines += [f"  {layer['name']}: {layer['why']}" for layer in data["layers"]
              if layer["type"] != "maxpool"]
    return "\n".join(lines)


def plot(data: dict, path) -> None:
    """``layers.png``: cycles per frame and block RAM per layer, the bottleneck in red."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [layer["name"] for layer in data["layers"]]
    colours = ["tab:red" if layer["bottleneck"] else "tab:blue" for layer in data["layers"]]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6, 0.6 * len(names) + 2), 6),
                                      sharex=True)
    top.bar(names, [layer["cycles"] for layer in data["layers"]], color=colours)
    top.set_ylabel("cycles / frame")
    top.set_title(f"{data['plan']} on {data['device']['name']}: {data['fps']:,.1f} frames/s at "
                  f"{data['clock_mhz']:g} MHz (red: bottleneck)")
    bottom.bar(names, [layer["bram"] for layer in data["layers"]], color=colours)
    bottom.set_ylabel(f"block RAM ({data['device']['bram_unit']})")
    bottom.tick_params(axis="x", rotation=60)
    fig.tight_layout()
    fig.savefig(Path(path), dpi=100, metadata={"Software": None})
    plt.close(fig)
