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

Between two stages
------------------
``producer -> [width adapter] -> [FIFO] -> consumer``.  A raster stream carries P values
a beat: the image P = C_in, a conv stage's output P = its lanes L, a pool keeps its
input's P.  A stage takes S (conv: its simd; pool: its lanes) values a beat; when P and S
differ a ``width_adapter`` (one divides the other: the planner picks folds so) repacks.
``StagePlan.fifo_depth`` beats of ``axis_fifo`` sit in front of a stage (the planner
sizes them from its cost model; 0 leaves the FIFO out).

Latency and throughput
----------------------
Cycles per frame in steady state: the largest stage's (Contract 7; the planner's
figure).  Latency: the sum of the stages' and the FIFOs' fill; measured by
``cnn-ip simulate``.
"""
from __future__ import annotations

from dataclasses import dataclass

from myhdl import block

from blocks.stream import Axis, clock_reset

FORMAT = "cnn_ip.network/1"
IMAGE_BITS = 8  # Contract 2: the network input is 8-bit unsigned


@dataclass(frozen=True)
class StagePlan:
    """What the top takes from the planner for one layer.

    layer:      the layer of the integer model (weights, constants, geometry)
    lanes:      L, output values a beat (conv/dense: output channels; maxpool: P)
    simd:       S, input values a beat (conv/dense: input channels; maxpool: = lanes)
    fifo_depth: beats of FIFO in front of the stage (0: none)
    dataflow:   "row" (the frame data flow is not built yet)
    """

    layer: object
    lanes: int
    simd: int
    fifo_depth: int = 0
    dataflow: str = "row"


# --------------------------------------------------------------------------- stages

def stage_def(plan: StagePlan):
    """The ``BlockDef`` of the stage that builds ``plan.layer``."""
    kind = plan.layer.type
    if kind in ("conv", "dense"):
        if plan.dataflow != "row":
            raise ValueError(f"{plan.layer.name}: dataflow: only 'row' is built, got "
                             f"{plan.dataflow!r}")
        from assemblies.conv_row import BLOCK
        return BLOCK
    if kind == "maxpool":
        from assemblies.pool import BLOCK
        return BLOCK
    raise ValueError(f"{plan.layer.name}: type: no stage builds {kind!r}")


def stage_values(plan: StagePlan, target: str, bits: int, signed: bool) -> dict:
    """The stage's parameter values (validated by its ``BlockDef``); ``bits``/``signed``
    describe the values of the stream it takes."""
    layer = plan.layer
    if layer.type == "maxpool":
        return {"layer": layer, "lanes": plan.lanes, "abits": bits, "signed": signed}
    return {"layer": layer, "lanes": plan.lanes, "simd": plan.simd, "abits": bits,
            "asigned": signed, "target": target}


def stream_ports(ports: dict) -> tuple[str, str]:
    """Names of a block's one input and one output stream among its ports."""
    ins = [k for k, v in ports.items() if isinstance(v, Axis) and k.startswith("s_axis")]
    outs = [k for k, v in ports.items() if isinstance(v, Axis) and k.startswith("m_axis")]
    if len(ins) != 1 or len(outs) != 1:
        raise ValueError(f"a chained block needs one input and one output stream, got "
                         f"{ins} and {outs}")
    return ins[0], outs[0]


def in_lanes(plan: StagePlan) -> int:
    return plan.lanes if plan.layer.type == "maxpool" else plan.simd


def value_bits(layer) -> tuple[int, bool]:
    """(bits, signed) of one value a non-final layer outputs (Contract 2)."""
    if layer.type == "maxpool":
        raise ValueError("value_bits: a pool keeps its input's values")
    return layer.act_bits, layer.lo < 0


class Element:
    """One block of the chain: its ``BlockDef``, prepared arguments and stream ports."""

    def __init__(self, block_def, values: dict):
        self.block_def = block_def
        self.params, self.args = block_def.prepared(**values)
        self.ports = block_def.ports(**self.args)
        self.s_name, self.m_name = stream_ports(self.ports)

    @property
    def out_port(self) -> Axis:
        return self.ports[self.m_name]


def chain(stages: list[StagePlan], target: str = "generic") -> list[Element]:
    """Every block of the top in stream order: adapters, FIFOs and stages.

    Checks that neighbours agree on lanes and value width, so a mismatch is an error here
    and not a silently mis-wired Verilog module.
    """
    if not stages:
        raise ValueError("stages: a network needs at least one stage")
    channels = stages[0].layer.in_shape[0]
    lanes, bits, signed, framed = channels, IMAGE_BITS, False, True
    elements = []
    for plan in stages:
        want = in_lanes(plan)
        if want != lanes:
            if max(want, lanes) % min(want, lanes):
                raise ValueError(f"{plan.layer.name}: takes {want} values a beat, gets "
                                 f"{lanes}: one must divide the other")
            from blocks.width_adapter import BLOCK as ADAPTER
            elements.append(Element(ADAPTER, {"lanes_in": lanes, "lanes_out": want,
                                              "bits": bits}))
        if plan.fifo_depth:
            from blocks.axis_fifo import BLOCK as FIFO
            elements.append(Element(FIFO, {"bits": want * bits, "depth": plan.fifo_depth,
                                           "last": framed}))
        stage = Element(stage_def(plan), stage_values(plan, target, bits, signed))
        width = len(stage.ports[stage.s_name].tdata)
        if width != want * bits:
            raise ValueError(f"{plan.layer.name}: input is {width} bits wide, the stream "
                             f"before it carries {want} x {bits} bits")
        elements.append(stage)
        framed = stage.out_port.tlast is not None
        lanes = plan.lanes
        if plan.layer.type != "maxpool":
            if plan.layer.final:
                bits, signed = len(stage.out_port.tdata) // lanes, True
            else:
                bits, signed = value_bits(plan.layer)
    return elements


def stream_shape(stages: list[StagePlan], elements: list[Element]) -> dict:
    """Shapes of ``s_axis_img`` and ``m_axis_out`` as the sidecar states them."""
    first, last = stages[0].layer, stages[-1].layer
    channels, height, width = last.out_shape
    out_bits = len(elements[-1].out_port.tdata) // stages[-1].lanes
    signed = True if last.final else (last.lo < 0 if last.type != "maxpool" else None)
    if signed is None:  # a pool last: its input's signedness
        signed = next(p.layer.lo < 0 for p in reversed(stages) if p.layer.type != "maxpool")
    return {
        "input": {"shape": list(first.in_shape), "order": "raster",
                  "lanes": first.in_shape[0], "bits": IMAGE_BITS, "signed": False},
        "output": {"shape": [channels, max(height, 1), max(width, 1)], "order": "raster",
                   "lanes": stages[-1].lanes, "bits": out_bits, "signed": bool(signed)},
    }


def top_ports(elements: list[Element]) -> dict:
    """Fresh top-level signals: ``aclk``, ``aresetn``, ``s_axis_img``, ``m_axis_out``.

    ``s_axis_img`` is as wide as the first element's input (C_in x 8 bits: the image's
    pixel) and always has ``tlast`` (Contract 6); ``m_axis_out`` is the last one's output.
    """
    first = elements[0].ports[elements[0].s_name]
    out = elements[-1].out_port
    return {**clock_reset(), "s_axis_img": Axis(len(first.tdata)),
            "m_axis_out": Axis(len(out.tdata), last=out.tlast is not None)}


@block
def network(aclk, aresetn, s_axis_img, m_axis_out, *, elements):
    """The network top; see the module docstring.  ``elements`` comes from :func:`chain`."""
    parts = []
    stream = s_axis_img
    for index, element in enumerate(elements):
        if index == len(elements) - 1:
            out = m_axis_out
        else:
            port = element.out_port
            out = Axis(len(port.tdata), last=port.tlast is not None)
        parts.append(element.block_def.build(aclk=aclk, aresetn=aresetn,
                                             **{element.s_name: stream, element.m_name: out},
                                             **element.args))
        stream = out
    return parts


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
            if why not in reasons.setdefault(rule, []):
                reasons[rule].append(f"{element.block_def.name}: {why}")
    return {rule: "; ".join(whys) for rule, whys in reasons.items()}
