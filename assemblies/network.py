"""``network``: the network top of docs/conventions.md Contract 6 — one stage per layer, chained.

Built from the integer model's layers (``quant.reference.IntLayer``) and what the
planner chose for each, a list of :class:`StagePlan`.  Every stage runs at once on its
part of the frame stream (layer pipelining); frames follow each other back to back.
``cnn_ip.export.write_network`` converts it into a directory with its files and ``.vlt``.

Ports (the Verilog module is named after the plan, ``name``)
-----
aclk, aresetn            clock; synchronous active-low reset
s_axis_img_t*            the input image, raster order, one pixel a beat:
                         ``tdata[C_in*8-1:0]`` unsigned, channel ``c`` at ``[8c+7:8c]``;
                         ``tlast`` on a frame's last pixel
m_axis_out_t*            the last stage's stream (``tlast`` on a frame's last beat): its
                         lanes, bits, signedness and order are in :func:`stream_shape`
                         (``z`` of Contract 2 for the last layer, signed)
m_axi_<layer>_*          per frame-based stage: its ``tile_dma`` AXI4 master (read channels
                         used, write channels tied off), reading the layer's group images
                         from the addresses of :func:`weight_image` (``memory_map.json``)
<layer>_rd_bytes[63:0]   per frame-based stage: bytes its DMA read since reset
error                    when any stage is frame-based: sticky, the OR of every stage's
                         DMA error (a bad command or a non-OKAY read response)

The top's argument list depends on the frame stages, and MyHDL names a top's ports after
its function's arguments, so :func:`top_block` writes that function's header for the
given chain (``m_axi_<layer>`` an ``AxiMaster`` interface, flattened to
``m_axi_<layer>_araddr``...) around :func:`network`.

Between two stages
------------------
``producer -> [width adapter] -> [FIFO] -> consumer``.  A raster stream carries P values
a beat: the image P = C_in, a conv stage's output P = its lanes L, a pool keeps its
input's P.  A stage takes S (conv: its simd; pool: its lanes) values a beat; when P and S
differ a ``width_adapter`` (one divides the other: the planner picks folds so) repacks.
``StagePlan.fifo_depth`` beats of ``axis_fifo`` sit in front of a stage (the planner
sizes them from its cost model; 0 leaves the FIFO out).

Map order (Contract 6): a frame conv with ``G = Cout/L > 1`` groups emits its map
*group-major*, G sub-maps of L channels; a pool keeps that order (built for sub-maps of
L channels, ``groups_in = G``), a frame conv takes it (``order_in``, ``groups_in``,
``lanes_in`` are derived here from the stream before it), a row conv cannot.

Latency and throughput
----------------------
Cycles per frame in steady state: the largest stage's (Contract 7; the planner's
figure).  Latency: the sum of the stages' and the FIFOs' fill; measured by
``cnn-ip simulate``.
"""
from __future__ import annotations

import linecache
from dataclasses import dataclass

from myhdl import ConcatSignal, Signal, always_comb, block

from blocks.stream import Axis, clock_reset

FORMAT = "cnn_ip.network/1"
IMAGE_BITS = 8  # Contract 2: the network input is 8-bit unsigned
BUS_BYTES = 8   # the frame stages' AXI data width (memory_map.json's bus_bytes)
WEIGHTS_BASE = 0  # where weights.bin is loaded (memory_map.json's base)


@dataclass(frozen=True)
class StagePlan:
    """What the top takes from the planner for one layer.

    layer:      the layer of the integer model (weights, constants, geometry)
    lanes:      L, output values a beat (conv/dense: output channels; maxpool: P)
    simd:       S, input values a beat (conv/dense: input channels; maxpool: = lanes)
    fifo_depth: beats of FIFO in front of the stage (0: none)
    dataflow:   "row" or "frame" (conv/dense only)
    buffers:    frame only: input maps the frame buffer holds (1 or 2)
    """

    layer: object
    lanes: int
    simd: int
    fifo_depth: int = 0
    dataflow: str = "row"
    buffers: int = 1

    @property
    def frame(self) -> bool:
        return self.dataflow == "frame" and self.layer.type != "maxpool"


# --------------------------------------------------------------------------- stages

def stage_def(plan: StagePlan):
    """The ``BlockDef`` of the stage that builds ``plan.layer``."""
    kind = plan.layer.type
    if kind in ("conv", "dense"):
        if plan.dataflow == "frame":
            from assemblies.conv_frame import BLOCK
            return BLOCK
        if plan.dataflow != "row":
            raise ValueError(f"{plan.layer.name}: dataflow: must be 'row' or 'frame', got "
                             f"{plan.dataflow!r}")
        from assemblies.conv_row import BLOCK
        return BLOCK
    if kind == "maxpool":
        from assemblies.pool import BLOCK
        return BLOCK
    raise ValueError(f"{plan.layer.name}: type: no stage builds {kind!r}")


@dataclass(frozen=True)
class Stream:
    """What flows between two stages: values a beat, their width, map order."""

    lanes: int
    bits: int
    signed: bool
    order: str = "raster"
    groups: int = 1          # group-major: sub-maps a frame (channels / lanes)
    framed: bool = True      # carries tlast


def stage_values(plan: StagePlan, target: str, stream: Stream, base: int | None) -> dict:
    """The stage's parameter values (validated by its ``BlockDef``) for the ``stream``
    it takes; ``base``: a frame stage's weight address (:func:`weight_image`)."""
    layer = plan.layer
    if layer.type == "maxpool":
        return {"layer": layer, "lanes": plan.lanes, "abits": stream.bits,
                "signed": stream.signed, "order_in": stream.order, "groups_in": stream.groups}
    values = {"layer": layer, "lanes": plan.lanes, "simd": plan.simd, "abits": stream.bits,
              "asigned": stream.signed, "target": target}
    if plan.frame:
        values.update(lanes_in=stream.lanes, order_in=stream.order, groups_in=stream.groups,
                      buffers=plan.buffers, bus_bits=8 * BUS_BYTES, base=base)
    return values


def weight_image(stages: list[StagePlan], *, base: int = WEIGHTS_BASE):
    """``(weights.bin bytes, memory_map dict)`` of the frame stages, in stage order
    (``quant.offchip.layout``, bus ``BUS_BYTES``); ``(b"", None)`` without frame stages."""
    frames = [(p.layer, p.lanes, p.simd) for p in stages if p.frame]
    if not frames:
        return b"", None
    from quant.offchip import layout
    return layout(frames, base=base, bus_bytes=BUS_BYTES)


def stream_ports(ports: dict) -> tuple[str, str]:
    """Names of a block's one input and one output stream among its ports."""
    ins = [k for k, v in ports.items() if isinstance(v, Axis) and k.startswith("s_axis")]
    outs = [k for k, v in ports.items() if isinstance(v, Axis) and k.startswith("m_axis")]
    if len(ins) != 1 or len(outs) != 1:
        raise ValueError(f"a chained block needs one input and one output stream, got "
                         f"{ins} and {outs}")
    return ins[0], outs[0]


def in_lanes(plan: StagePlan, stream: Stream) -> int:
    """Values a beat the stage takes: a frame conv's frame buffer takes the stream's."""
    if plan.frame:
        return stream.lanes
    return plan.lanes if plan.layer.type == "maxpool" else plan.simd


def value_bits(layer) -> tuple[int, bool]:
    """(bits, signed) of one value a non-final layer outputs (Contract 2)."""
    if layer.type == "maxpool":
        raise ValueError("value_bits: a pool keeps its input's values")
    return layer.act_bits, layer.lo < 0


SIDE_PORTS = ("m_axi", "rd_bytes", "error")   # a frame stage's ports besides its streams


class Element:
    """One block of the chain: its ``BlockDef``, prepared arguments and stream ports;
    ``name`` (the layer) and ``side`` (its ports among ``SIDE_PORTS``) for a stage."""

    def __init__(self, block_def, values: dict, name: str = ""):
        self.block_def = block_def
        self.name = name
        self.params, self.args = block_def.prepared(**values)
        self.ports = block_def.ports(**self.args)
        self.s_name, self.m_name = stream_ports(self.ports)
        rest = set(self.ports) - {"aclk", "aresetn", self.s_name, self.m_name}
        unknown = rest - set(SIDE_PORTS)
        if unknown:
            raise ValueError(f"{block_def.name}: no top port for {', '.join(sorted(unknown))}")
        self.side = [p for p in SIDE_PORTS if p in rest]

    @property
    def out_port(self) -> Axis:
        return self.ports[self.m_name]


def chain(stages: list[StagePlan], target: str = "generic") -> list[Element]:
    """Every block of the top in stream order: adapters, FIFOs and stages.

    Checks that neighbours agree on lanes, value width and map order, so a mismatch is an
    error here and not a silently mis-wired Verilog module.
    """
    if not stages:
        raise ValueError("stages: a network needs at least one stage")
    _, memory_map = weight_image(stages)
    stream = Stream(lanes=stages[0].layer.in_shape[0], bits=IMAGE_BITS, signed=False)
    elements = []
    for plan in stages:
        want = in_lanes(plan, stream)
        if stream.order == "group-major" and not plan.frame and plan.layer.type != "maxpool":
            raise ValueError(f"{plan.layer.name}: a row stage cannot take the group-major "
                             f"map before it (make it dataflow: frame)")
        if want != stream.lanes:
            if max(want, stream.lanes) % min(want, stream.lanes):
                raise ValueError(f"{plan.layer.name}: takes {want} values a beat, gets "
                                 f"{stream.lanes}: one must divide the other")
            if stream.order == "group-major" and stream.lanes % want:
                raise ValueError(f"{plan.layer.name}: takes {want} values a beat from a "
                                 f"group-major map of {stream.lanes}-channel sub-maps: "
                                 f"must divide {stream.lanes}")
            from blocks.width_adapter import BLOCK as ADAPTER
            elements.append(Element(ADAPTER, {"lanes_in": stream.lanes, "lanes_out": want,
                                              "bits": stream.bits}))
        if plan.fifo_depth:
            from blocks.axis_fifo import BLOCK as FIFO
            elements.append(Element(FIFO, {"bits": want * stream.bits,
                                           "depth": plan.fifo_depth, "last": stream.framed,
                                           "target": target}))
        stream = Stream(want, stream.bits, stream.signed, stream.order, stream.groups,
                        stream.framed)
        base = (memory_map["base"] + memory_map["layers"][plan.layer.name]["offset"]
                if plan.frame else None)
        stage = Element(stage_def(plan), stage_values(plan, target, stream, base),
                        name=plan.layer.name)
        width = len(stage.ports[stage.s_name].tdata)
        if width != want * stream.bits:
            raise ValueError(f"{plan.layer.name}: input is {width} bits wide, the stream "
                             f"before it carries {want} x {stream.bits} bits")
        elements.append(stage)
        stream = stream_after(plan, stage, stream)
    return elements


def stream_after(plan: StagePlan, stage: Element, before: Stream) -> Stream:
    """The stream a stage emits, given the one it takes."""
    framed = stage.out_port.tlast is not None
    if plan.layer.type == "maxpool":
        return Stream(plan.lanes, before.bits, before.signed, before.order, before.groups,
                      framed)
    if plan.layer.final:
        bits, signed = len(stage.out_port.tdata) // plan.lanes, True
    else:
        bits, signed = value_bits(plan.layer)
    groups = plan.layer.out_shape[0] // plan.lanes
    if plan.frame and groups > 1:
        return Stream(plan.lanes, bits, signed, "group-major", groups, framed)
    return Stream(plan.lanes, bits, signed, "raster", 1, framed)


def stream_shape(stages: list[StagePlan], elements: list[Element]) -> dict:
    """Shapes of ``s_axis_img`` and ``m_axis_out`` as the sidecar states them."""
    first, last = stages[0].layer, stages[-1].layer
    channels, height, width = last.out_shape
    order = "raster"
    for plan in stages:       # the last stage's order: group-major once a frame conv has G > 1
        if plan.frame:
            order = "group-major" if plan.layer.out_shape[0] > plan.lanes else "raster"
    out_bits = len(elements[-1].out_port.tdata) // stages[-1].lanes
    signed = True if last.final else (last.lo < 0 if last.type != "maxpool" else None)
    if signed is None:  # a pool last: its input's signedness
        signed = next(p.layer.lo < 0 for p in reversed(stages) if p.layer.type != "maxpool")
    return {
        "input": {"shape": list(first.in_shape), "order": "raster",
                  "lanes": first.in_shape[0], "bits": IMAGE_BITS, "signed": False},
        "output": {"shape": [channels, max(height, 1), max(width, 1)], "order": order,
                   "lanes": stages[-1].lanes, "bits": out_bits, "signed": bool(signed)},
    }


def top_name(element: Element, side: str) -> str:
    """The top port a stage's side port becomes: ``m_axi_<layer>``, ``<layer>_rd_bytes``."""
    return {"m_axi": f"m_axi_{element.name}", "rd_bytes": f"{element.name}_rd_bytes",
            "error": "error"}[side]


def top_ports(elements: list[Element]) -> dict:
    """Fresh top-level signals: ``aclk``, ``aresetn``, ``s_axis_img``, ``m_axis_out``, and
    per frame stage ``m_axi_<layer>`` and ``<layer>_rd_bytes``, then one ``error``.

    ``s_axis_img`` is as wide as the first element's input (C_in x 8 bits: the image's
    pixel) and always has ``tlast`` (Contract 6); ``m_axis_out`` is the last one's output.
    """
    first = elements[0].ports[elements[0].s_name]
    out = elements[-1].out_port
    ports = {**clock_reset(), "s_axis_img": Axis(len(first.tdata)),
             "m_axis_out": Axis(len(out.tdata), last=out.tlast is not None)}
    for element in elements:
        if not element.side:
            continue
        fresh = element.block_def.ports(**element.args)
        for side in element.side:
            if side != "error":
                name = top_name(element, side)
                if name in ports:
                    raise ValueError(f"two stages are named {element.name}: top port {name}")
                ports[name] = fresh[side]
    if any("error" in e.side for e in elements):
        ports["error"] = Signal(bool(0))
    return ports


@block
def network(aclk, aresetn, s_axis_img, m_axis_out, *, elements, side=None):
    """The network top's body; see the module docstring.  ``elements`` comes from
    :func:`chain`; ``side`` maps top port names (:func:`top_name`) to their signals."""
    side = side or {}
    parts = []
    errors = []
    stream = s_axis_img
    for index, element in enumerate(elements):
        if index == len(elements) - 1:
            out = m_axis_out
        else:
            port = element.out_port
            out = Axis(len(port.tdata), last=port.tlast is not None)
        extra = {}
        for name in element.side:
            if name == "error":
                extra[name] = Signal(bool(0))
                errors.append(extra[name])
            else:
                extra[name] = side[top_name(element, name)]
        parts.append(element.block_def.build(aclk=aclk, aresetn=aresetn,
                                             **{element.s_name: stream, element.m_name: out},
                                             **extra, **element.args))
        stream = out
    if errors:
        parts.append(error_or(errors, side["error"]))
    return parts


@block
def error_or(errors, error):
    """``error`` = the OR of the stages' sticky errors (each sticky, so the OR is)."""
    flags = ConcatSignal(*errors) if len(errors) > 1 else errors[0]

    @always_comb
    def any_error():
        error.next = flags != 0

    return any_error


def top_block(elements: list[Element], name: str):
    """The top's ``@block`` function, its arguments the top's ports (:func:`top_ports`).

    MyHDL reads a top's port names from its function's source, so the header is written
    for this chain and the source registered with ``linecache`` (where ``inspect`` finds
    it); the body calls :func:`network`.  Returns ``(block function, ports dict)``.
    """
    ports = top_ports(elements)
    fixed = ("aclk", "aresetn", "s_axis_img", "m_axis_out")
    side = [n for n in ports if n not in fixed]
    source = (f"def {name}({', '.join(ports)}):\n"
              f"    return network({', '.join(fixed)}, elements=elements,\n"
              f"                   side={{{', '.join(f'{n!r}: {n}' for n in side)}}})\n")
    filename = f"<cnn_ip network top {name}: {len(linecache.cache)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    scope = {"network": network, "elements": elements, "__name__": __name__}
    exec(compile(source, filename, "exec"), scope)  # noqa: S102 - our own header, no input
    return block(scope[name]), ports


# --------------------------------------------------------------------------- Verilog


TOP_WAIVERS = {
    "UNUSEDSIGNAL": "s_axis_img_tlast and the tlast of FIFOs and adapters in front of a "
                    "stage that counts its frames from the layer's shape (Contract 6 keeps "
                    "tlast on the top's input and on every stage's output)",
}


def lint_rules(elements: list[Element]) -> dict:
    """Every waivable rule of the top's blocks, with all their reasons."""
    reasons: dict[str, list[str]] = {rule: [why] for rule, why in TOP_WAIVERS.items()}
    for element in elements:
        for rule, why in element.block_def.lint_waivers.items():
            reason = f"{element.block_def.name}: {why}"
            if reason not in reasons.setdefault(rule, []):    # once a kind of stage
                reasons[rule].append(reason)
    return {rule: "; ".join(whys) for rule, whys in reasons.items()}
