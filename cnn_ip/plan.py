"""The plan file: a YAML description of a network and of the accelerator to build for it.

A plan is data, never code: it is read with ``yaml.SafeLoader`` (no tags, no objects)
through a subclass that records the line of every mapping key, so that every mistake is
reported as ONE line ``file:line: field: what is wrong`` (:class:`PlanError`, a
:class:`~cnn_ip.errors.UserError`, exit status 2 from the CLI).

Shape of a plan (see ``examples/digits.yaml`` and ``examples/tiny_yolov2.yaml``)::

    name: digits
    input: {channels: 1, height: 8, width: 8, bits: 8}
    dataset: digits                    # optional: digits | digits-detect
    device: ecp5-85f                   # a name from fpga/devices.py (needed by assemble)
    clock_mhz: 150                     # needed by assemble
    target_fps: 100000                 # optional: without it, the highest rate that fits
    limits: {bram: 0.9, dsp: 0.9, lut: 0.9, ff: 0.9}   # optional: share of each budget
    dataflow: auto                     # optional default of every layer's dataflow
    detect: {anchors: 5}               # optional: the last layer is a detection head
    layers:
      - {type: conv, out: 16, k: 3, pad: 1, act: relu, weights: int4, act_bits: 4}
      - {type: maxpool, k: 2}
      - {type: dense, out: 10, weights: ternary, sparsity: auto, fold: {lanes: 2, simd: 16}}
    quantize: {seed: 0, evaluations: 16}     # optional: settings of `cnn-ip quantize`

Layer types and keys (defaults in brackets):

* ``conv``: ``out``, ``k``, ``stride`` [1], ``pad`` [0] (zero rows/columns on each side),
  ``act`` relu|leaky|none [relu], ``slope`` (leaky only) [0.125], ``weights``,
  ``act_bits``, ``sparsity`` [0], ``bn`` [false]
* ``maxpool``: ``k``, ``stride`` [k], ``pad`` [0]: Darknet's convention, ``pad`` extra rows
  (and columns) in all, ``pad // 2`` above (left) and the rest below (right), filled with
  the smallest value of the input's range; the output is ``(H + pad - k) // stride + 1``
  high.  Tiny-YOLOv2's 2x2 stride-1 pool with ``pad: 1`` keeps 13x13.  ``Layer.pad_before``
  and ``Layer.pad_after`` give the split (``quant.reference.IntLayer``'s ``pad`` and
  ``pad_end``).
* ``dense``: ``out``, ``act`` [relu, or none for the last layer], ``weights``, ``act_bits``,
  ``sparsity`` [0]; a conv whose window is the whole input map; its output is the 1x1 map
  ``(out, 1, 1)``.

Every weight layer may carry ``fold: {lanes: L, simd: S}`` (L divides the layer's output
channels, S its input channels; by default the planner chooses) and every layer a
``dataflow`` (row | frame | auto, default the plan's) and a ``name`` (default
``<type><index>``).  ``weights`` is ``binary``, ``ternary`` or ``int2`` .. ``int8``;
``act_bits`` 1..8; ``sparsity`` a fraction in [0, 1) or ``auto`` (chosen by the Bayesian
search; not for ``binary``, which has no zero code).

The last layer outputs its accumulator (``act: none``, no ``act_bits``): a ``dense``
classifier, or a ``conv`` head.  With ``detect: {anchors: N}`` (and optional ``classes``,
default the data set's) the last layer is a conv head with ``N * (5 + classes)`` outputs;
otherwise, with a data set, the last layer has one output per class.  ``dataset:
digits`` fixes the input to 1x8x8; ``digits-detect`` takes its canvas size from ``input``
(one channel).  A plan without a data set can still be planned and assembled with
``--random-weights``.

Shapes the blocks cannot build are rejected here, naming the block's limit (the limits are
read from the blocks' own parameter tables).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from blocks.spec import VERILOG_NAME
from cnn_ip.errors import UserError
from quant import weight_modes
from quant.options import (CODE_SET_NAMES, MAX_INTEGER, RANGES, SCALARIZATIONS,
                           SIZE_BUDGET_MODES, STRUCTURE_OFFERS)

# ``shape`` None: the data set takes its canvas from the plan's input (one channel, at
# least ``min_size`` pixels a side).
DATASETS = {"digits": {"shape": (1, 8, 8), "classes": 10},
            "digits-detect": {"shape": None, "channels": 1, "min_size": 24, "classes": 10}}
WEIGHT_MODES = weight_modes.PLAN_NAMES
ACTIVATIONS = ("relu", "leaky", "none")
DATAFLOWS = ("auto", "row", "frame")
TOP_KEYS = ("name", "input", "dataset", "layers", "quantize", "device", "clock_mhz",
            "target_fps", "limits", "dataflow", "detect")
INPUT_KEYS = ("channels", "height", "width", "bits")
LIMIT_KEYS = ("lut", "ff", "dsp", "bram")
DEFAULT_LIMIT = 0.9             # docs/conventions.md Contract 7: at most 90 % of each budget
DETECT_KEYS = ("anchors", "classes")
BOX_VALUES = 5                  # per anchor: x, y, w, h, objectness (then the classes)
MAX_CLOCK_MHZ = 1000
# The plan's name is the top module's: a plain Verilog identifier (blocks.spec.VERILOG_NAME)
# and, for `cnn-ip assemble` (:func:`check_top_name`), no keyword of IEEE 1800-2017
# (Verilator reads the top as SystemVerilog) and no module written beside it (the
# ``*_sim.v`` models).
VERILOG_KEYWORDS = frozenset("""
accept_on alias always always_comb always_ff always_latch and assert assign assume automatic
before begin bind bins binsof bit break buf bufif0 bufif1 byte case casex casez cell chandle
checker class clocking cmos config const constraint context continue cover covergroup
coverpoint cross deassign default defparam design disable dist do edge else end endcase
endchecker endclass endclocking endconfig endfunction endgenerate endgroup endinterface
endmodule endpackage endprimitive endprogram endproperty endspecify endsequence endtable
endtask enum event eventually expect export extends extern final first_match for force
foreach forever fork forkjoin function generate genvar global highz0 highz1 if iff ifnone
ignore_bins illegal_bins implements implies import incdir include initial inout input inside
instance int integer interconnect interface intersect join join_any join_none large let
liblist library local localparam logic longint macromodule matches medium modport module
nand negedge nettype new nexttime nmos nor noshowcancelled not notif0 notif1 null or output
package packed parameter pmos posedge primitive priority program property protected pull0
pull1 pulldown pullup pulsestyle_ondetect pulsestyle_onevent pure rand randc randcase
randsequence rcmos real realtime ref reg reject_on release repeat restrict return rnmos
rpmos rtran rtranif0 rtranif1 s_always s_eventually s_nexttime s_until s_until_with scalared
sequence shortint shortreal showcancelled signed small soft solve specify specparam static
string strong strong0 strong1 struct super supply0 supply1 sync_accept_on sync_reject_on
table tagged task this throughout time timeprecision timeunit tran tranif0 tranif1 tri tri0
tri1 triand trior trireg type typedef union unique unique0 unsigned until until_with untyped
use uwire var vectored virtual void wait wait_order wand weak weak0 weak1 while wildcard wire
with within wor xnor xor""".split())


def reserved_modules() -> set[str]:
    """Modules an assemble output holds besides the top: the primitive models ``blocks``
    ships as ``NAME_sim.v``."""
    import blocks
    return {path.name[:-len("_sim.v")] for path in Path(blocks.__file__).parent.glob("*_sim.v")}


def check_top_name(plan) -> None:
    """PlanError at the plan's ``name:`` when the top module cannot take that name (checked
    by ``cnn-ip assemble``; quantizing and planning need no Verilog)."""
    if plan.name in VERILOG_KEYWORDS:
        plan.fail("name", f"names the Verilog top and {plan.name!r} is a Verilog keyword; "
                  "choose another name")
    if plan.name in reserved_modules():
        plan.fail("name", f"names the Verilog top and {plan.name!r} is a module the output "
                  "holds; choose another name")


QUANTIZE_KEYS = {"seed": int, "epochs": int, "qat_epochs": int, "search_epochs": int,
                 "final_epochs": int, "evaluations": int, "accuracy_budget": float,
                 "penalty": float, "mbits": int, "base_sparsity": float, "prune_steps": int,
                 "codes": str, "structures": str, "accuracy_weight": float, "confirm": int,
                 "size_exponent": float, "scalarization": str, "utopia": float,
                 "size_budget": int, "size_budget_mode": str}
# The words a string setting takes (quant.options says what each means)
QUANTIZE_CHOICES = {"codes": CODE_SET_NAMES, "structures": STRUCTURE_OFFERS,
                    "scalarization": SCALARIZATIONS, "size_budget_mode": SIZE_BUDGET_MODES}
COMMON_LAYER_KEYS = ("type", "name", "dataflow")
LAYER_KEYS = {
    "conv": ("out", "k", "stride", "pad", "act", "slope", "weights", "act_bits", "sparsity", "bn",
             "fold"),
    "maxpool": ("k", "stride", "pad"),
    "dense": ("out", "act", "slope", "weights", "act_bits", "sparsity", "fold"),
}
FOLD_KEYS = ("lanes", "simd")


class PlanError(UserError):
    """One mistake in a plan file, as ``file:line: field: what is wrong``."""


@dataclass(frozen=True)
class Layer:
    """One layer of a plan, with defaults filled in and its input/output shapes (C, H, W)."""
    type: str
    name: str
    line: int
    in_shape: tuple
    out_shape: tuple
    out: int | None = None
    k: int | None = None
    stride: int = 1
    pad: int = 0
    act: str = "none"
    slope: float = 0.125
    weights: str | None = None
    act_bits: int | None = None
    sparsity: float | str = 0.0
    bn: bool = False
    dataflow: str = "auto"
    fold: tuple | None = None       # (lanes, simd) fixed by the plan, or None: the planner's
    final: bool = False             # the last layer: outputs its accumulator
    key_lines: tuple = field(default=(), compare=False, repr=False)   # (key, line) pairs

    def line_of(self, key: str) -> int:
        """The line of one of the layer's keys (the layer's line when the key is absent)."""
        return dict(self.key_lines).get(key, self.line)

    @property
    def mode(self) -> tuple[str, int | None]:
        """``(weights, wbits)`` as the blocks take them: ``int4`` -> ``("int", 4)``."""
        return weight_modes.parse(self.weights)

    @property
    def wbits(self) -> int | None:
        """N, the bits of an ``int`` weight; ``None`` for binary, ternary and weightless layers."""
        return None if self.weights is None else self.mode[1]

    @property
    def code_bits(self) -> int | None:
        """WB, the bits of one weight code: 1 (binary), 2 (ternary) or N (intN)."""
        return None if self.weights is None else weight_modes.code_bits(*self.mode)

    @property
    def has_weights(self) -> bool:
        return self.type in ("conv", "dense")

    @property
    def pad_before(self) -> int:
        """Padding rows above (columns left): a conv's ``pad``; a pool's ``pad // 2``."""
        return self.pad // 2 if self.type == "maxpool" else self.pad

    @property
    def pad_after(self) -> int:
        """Padding rows below (columns right): ``quant.reference.IntLayer.pad_end``."""
        return self.pad - self.pad_before if self.type == "maxpool" else self.pad

    @property
    def window(self) -> int:
        """The window side: ``k``, or for a dense layer its whole (square) input map."""
        return self.in_shape[1] if self.type == "dense" else self.k

    @property
    def reduce(self) -> int | None:
        """Length of one dot product: K*K*Cin (a dense layer's window is its input map)."""
        if not self.has_weights:
            return None
        c, h, w = self.in_shape
        return c * (h * w if self.type == "dense" else self.k * self.k)


@dataclass(frozen=True)
class Plan:
    path: str
    name: str
    dataset: str | None
    input_shape: tuple            # (channels, height, width)
    input_bits: int
    layers: tuple
    quantize: dict = field(default_factory=dict)
    device: str | None = None
    clock_mhz: float | None = None
    dataflow: str = "auto"
    target_fps: float | None = None
    limits: dict = field(default_factory=lambda: dict.fromkeys(LIMIT_KEYS, DEFAULT_LIMIT))
    detect: dict | None = None    # {"anchors": N, "classes": C} for a detection head
    lines: dict = field(default_factory=dict)   # top-level key -> line (1-based)

    @property
    def classes(self) -> int | None:
        if self.detect is not None:
            return self.detect["classes"]
        return DATASETS[self.dataset]["classes"] if self.dataset else None

    def line(self, key: str) -> int:
        """The line of a top-level key (the plan's first line when the key is absent)."""
        return self.lines.get(key, 1)

    def fail(self, key: str, message: str):
        """Raise ``PlanError`` for a top-level field, in the plan's one-line format."""
        raise PlanError(f"{self.path}:{self.line(key)}: {key}: {message}")

    def require(self, key: str, purpose: str):
        """The value of an optional top-level field a command needs, or one-line error."""
        value = getattr(self, key, None)
        if value is None:
            self.fail(key, f"missing ({purpose} needs it)")
        return value


# --------------------------------------------------------------------------- YAML + lines

class LineMap(dict):
    """A YAML mapping that remembers its own line and the line of each key (1-based)."""
    line: int = 0
    key_lines: dict


class LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings are :class:`LineMap` and that rejects duplicate keys."""


def _construct_mapping(loader, node):
    loader.flatten_mapping(node)
    result = LineMap()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise PlanError(f"{loader.name}:{line}: {key!r}: keys must be names")
        if key in result:
            raise PlanError(f"{loader.name}:{line}: {key}: given twice")
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _Context:
    """Where we are in the file, to format errors."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, line: int, field_name: str, message: str):
        raise PlanError(f"{self.path}:{line}: {field_name}: {message}")


# --------------------------------------------------------------------------- loading

def load_plan(path) -> Plan:
    """Read and validate a plan file; raise :class:`PlanError` on the first mistake."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise PlanError(f"{path}: cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        line = error.object[:error.start].count(b"\n") + 1
        raise PlanError(f"{path}:{line}: yaml: not UTF-8 text (byte 0x"
                        f"{error.object[error.start]:02x})") from None
    return parse_plan(text, path)


def parse_plan(text: str, path: str = "<plan>") -> Plan:
    ctx = _Context(path)
    try:
        loader = LineLoader(text)       # which checks every character first
    except yaml.reader.ReaderError as error:
        ctx.fail(text[:error.position].count("\n") + 1, "yaml",
                 f"character #x{error.character:04x}: {error.reason}")
    loader.name = path
    try:
        doc = loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 1
        ctx.fail(line, "yaml", str(error.problem or error.context or "syntax error"))
    except yaml.YAMLError as error:
        ctx.fail(1, "yaml", str(error).splitlines()[0])
    finally:
        loader.dispose()
    if not isinstance(doc, LineMap):
        ctx.fail(1, "plan", "must be a mapping with name, input and layers")
    _check_keys(ctx, doc, TOP_KEYS, "")
    for key in ("name", "input", "layers"):
        if key not in doc:
            ctx.fail(doc.line, key, "missing")
    name = _string(ctx, doc, "name", "name")
    if not VERILOG_NAME.fullmatch(name):
        ctx.fail(doc.key_lines["name"], "name", f"names the Verilog top: letters, digits and _ "
                 f"not starting with a digit, got {name!r}")
    dataset = _choice(ctx, doc, "dataset", "dataset", tuple(DATASETS)) if "dataset" in doc else None
    input_shape, input_bits = _input(ctx, doc, dataset)
    detect = _detect(ctx, doc, dataset)
    dataflow = _choice(ctx, doc, "dataflow", "dataflow", DATAFLOWS) if "dataflow" in doc else "auto"
    classes = detect["classes"] if detect else DATASETS[dataset]["classes"] if dataset else None
    layers = _layers(ctx, doc, input_shape, dataset, classes, detect, dataflow)
    quantize = _quantize(ctx, doc)
    device = None
    if "device" in doc:
        from fpga.devices import DEVICES
        device = _choice(ctx, doc, "device", "device", tuple(DEVICES))
    clock = None
    if "clock_mhz" in doc:
        clock = _number(ctx, doc, "clock_mhz", "clock_mhz", low=0, high=MAX_CLOCK_MHZ, low_open=True)
    fps = None
    if "target_fps" in doc:
        fps = _number(ctx, doc, "target_fps", "target_fps", low=0, low_open=True)
    return Plan(path=path, name=name, dataset=dataset, input_shape=input_shape,
                input_bits=input_bits, layers=layers, quantize=quantize, device=device,
                clock_mhz=clock, dataflow=dataflow, target_fps=fps, limits=_limits(ctx, doc),
                detect=detect, lines=dict(doc.key_lines))


def _check_keys(ctx, mapping, allowed, prefix):
    for key in mapping:
        if key not in allowed:
            ctx.fail(mapping.key_lines[key], prefix + key,
                     f"unknown key (allowed: {', '.join(allowed)})")


def _mapping(ctx, doc, key, field_name, what):
    spec = doc[key]
    if not isinstance(spec, LineMap):
        ctx.fail(doc.key_lines[key], field_name, f"must be a mapping {what}")
    return spec


def _input(ctx, doc, dataset):
    spec = _mapping(ctx, doc, "input", "input", "{channels, height, width, bits}")
    _check_keys(ctx, spec, INPUT_KEYS, "input.")
    for key in ("channels", "height", "width"):
        if key not in spec:
            ctx.fail(spec.line, f"input.{key}", "missing")
    shape = tuple(_integer(ctx, spec, key, f"input.{key}", 1, 4096)
                  for key in ("channels", "height", "width"))
    bits = _integer(ctx, spec, "bits", "input.bits", 1, 32) if "bits" in spec else 8
    if bits != 8:
        ctx.fail(spec.key_lines["bits"], "input.bits",
                 f"the network input is 8-bit unsigned (docs/conventions.md Contract 2), got {bits}")
    if dataset is None:
        return shape, bits
    info = DATASETS[dataset]
    want = info["shape"]
    if want is not None and shape != want:
        ctx.fail(doc.key_lines["input"], "input",
                 f"dataset {dataset} has {want[0]}x{want[1]}x{want[2]} (channels x height x width) "
                 f"images, the plan says {shape[0]}x{shape[1]}x{shape[2]}")
    if want is None and shape[0] != info["channels"]:
        ctx.fail(spec.key_lines["channels"], "input.channels",
                 f"dataset {dataset} has {info['channels']}-channel canvases, got {shape[0]}")
    if want is None and min(shape[1:]) < info["min_size"]:
        ctx.fail(doc.key_lines["input"], "input",
                 f"dataset {dataset} needs canvases of at least {info['min_size']}x{info['min_size']} "
                 f"(digits scaled up to 3x), got {shape[1]}x{shape[2]}")
    return shape, bits


def _detect(ctx, doc, dataset):
    if "detect" not in doc:
        if dataset == "digits-detect":
            ctx.fail(doc.key_lines["dataset"], "detect",
                     "missing: dataset digits-detect needs a detection head, detect: {anchors: N}")
        return None
    spec = _mapping(ctx, doc, "detect", "detect", "{anchors: N, classes: C}")
    _check_keys(ctx, spec, DETECT_KEYS, "detect.")
    if "anchors" not in spec:
        ctx.fail(spec.line, "detect.anchors", "missing")
    anchors = _integer(ctx, spec, "anchors", "detect.anchors", 1, 64)
    if "classes" in spec:
        classes = _integer(ctx, spec, "classes", "detect.classes", 1, 4096)
        if dataset is not None and classes != DATASETS[dataset]["classes"]:
            ctx.fail(spec.key_lines["classes"], "detect.classes",
                     f"dataset {dataset} has {DATASETS[dataset]['classes']} classes, got {classes}")
    elif dataset is not None:
        classes = DATASETS[dataset]["classes"]
    else:
        ctx.fail(spec.line, "detect.classes", "missing (no dataset gives the number of classes)")
    return {"anchors": anchors, "classes": classes}


def _limits(ctx, doc):
    limits = dict.fromkeys(LIMIT_KEYS, DEFAULT_LIMIT)
    if "limits" not in doc:
        return limits
    spec = _mapping(ctx, doc, "limits", "limits", "of shares of the budget, e.g. {bram: 0.9, dsp: 0.9}")
    _check_keys(ctx, spec, LIMIT_KEYS, "limits.")
    for key in spec:
        limits[key] = _number(ctx, spec, key, f"limits.{key}", low=0, high=1, low_open=True)
    return limits


def _quantize(ctx, doc):
    if "quantize" not in doc:
        return {}
    spec = _mapping(ctx, doc, "quantize", "quantize", "of settings")
    _check_keys(ctx, spec, tuple(QUANTIZE_KEYS), "quantize.")
    out = {}
    for key, kind in QUANTIZE_KEYS.items():
        if key in spec:
            low, high = RANGES[key] if kind is not str else (None, None)
            if kind is str:
                out[key] = _choice(ctx, spec, key, f"quantize.{key}", QUANTIZE_CHOICES[key])
            elif kind is int:
                out[key] = _integer(ctx, spec, key, f"quantize.{key}", low, high or MAX_INTEGER)
            else:
                out[key] = _number(ctx, spec, key, f"quantize.{key}", low=low, high=high)
    return out


def _layers(ctx, doc, input_shape, dataset, classes, detect, dataflow):
    items = doc["layers"]
    line = doc.key_lines["layers"]
    if not isinstance(items, list) or not items:
        ctx.fail(line, "layers", "must be a non-empty list of layers")
    layers, names, shape = [], set(), input_shape
    for index, item in enumerate(items):
        where = f"layers[{index}]"
        if not isinstance(item, LineMap):
            ctx.fail(line, where, "must be a mapping such as {type: conv, out: 16, k: 3, ...}")
        last = index == len(items) - 1
        after_dense = bool(layers) and layers[-1].type == "dense"
        layer = _layer(ctx, item, where, index, shape, last, after_dense, dataflow,
                       classify=dataset is not None and detect is None)
        if layer.name in names:
            ctx.fail(item.key_lines.get("name", item.line), f"{where}.name",
                     f"'{layer.name}' is used by an earlier layer")
        names.add(layer.name)
        layers.append(layer)
        shape = layer.out_shape
    last, where = layers[-1], f"layers[{len(items) - 1}]"
    if detect is not None:
        want = detect["anchors"] * (BOX_VALUES + detect["classes"])
        if last.type != "conv":
            ctx.fail(items[-1].key_lines["type"], f"{where}.type",
                     "with detect, the last layer must be the conv head")
        if last.out != want:
            ctx.fail(items[-1].key_lines["out"], f"{where}.out",
                     f"the head needs anchors*(5+classes) = {detect['anchors']}*(5+"
                     f"{detect['classes']}) = {want} outputs, got {last.out}")
    elif classes is not None and last.out != classes:
        ctx.fail(items[-1].key_lines["out"], f"{where}.out",
                 f"the dataset has {classes} classes, the last layer has {last.out} outputs")
    _check_adjacent_folds(ctx, items, layers)
    return tuple(layers)


def _layer(ctx, item, where, index, in_shape, last, after_dense, dataflow, classify):
    if "type" not in item:
        ctx.fail(item.line, f"{where}.type", f"missing (one of {', '.join(LAYER_KEYS)})")
    kind = _choice(ctx, item, "type", f"{where}.type", tuple(LAYER_KEYS))
    _check_keys(ctx, item, COMMON_LAYER_KEYS + LAYER_KEYS[kind], f"{where}.")
    if last and classify and kind != "dense":
        ctx.fail(item.key_lines["type"], f"{where}.type",
                 "the last layer must be the dense classifier (the dataset classifies images; "
                 "a conv head needs detect)")
    if last and kind == "maxpool":
        ctx.fail(item.key_lines["type"], f"{where}.type",
                 "the last layer must be a dense classifier or a conv head")
    line_of = lambda key: item.key_lines.get(key, item.line)  # noqa: E731
    required = {"conv": ("out", "k", "weights"), "maxpool": ("k",), "dense": ("out", "weights")}[kind]
    if kind != "maxpool" and not last:
        required += ("act_bits",)
    for key in required:
        if key not in item:
            ctx.fail(item.line, f"{where}.{key}", "missing")
    values = {"type": kind, "line": item.line, "in_shape": in_shape, "final": last}
    values["name"] = _string(ctx, item, "name", f"{where}.name") if "name" in item else f"{kind}{index}"
    if not VERILOG_NAME.fullmatch(values["name"]):
        ctx.fail(line_of("name"), f"{where}.name", "names Verilog modules and files: letters, "
                 f"digits and _ not starting with a digit, got {values['name']!r}")
    values["dataflow"] = (_choice(ctx, item, "dataflow", f"{where}.dataflow", DATAFLOWS)
                          if "dataflow" in item else dataflow)
    channels, height, width = in_shape
    if kind in ("conv", "maxpool") and after_dense:
        ctx.fail(item.line, f"{where}.type", f"{kind} cannot follow a dense layer")
    if kind in ("conv", "dense"):
        values["out"] = _integer(ctx, item, "out", f"{where}.out", 1, 65536)
        values["weights"] = _choice(ctx, item, "weights", f"{where}.weights", WEIGHT_MODES)
        default_act = "none" if last else "relu"
        values["act"] = _choice(ctx, item, "act", f"{where}.act", ACTIVATIONS) if "act" in item else default_act
        if "slope" in item:
            if values["act"] != "leaky":
                ctx.fail(line_of("slope"), f"{where}.slope", "only a leaky activation has a slope")
            values["slope"] = _number(ctx, item, "slope", f"{where}.slope", low=0, high=1, low_open=True)
        if last:
            if values["act"] != "none":
                ctx.fail(line_of("act"), f"{where}.act",
                         "the last layer outputs its accumulator; its act must be none")
            if "act_bits" in item:
                ctx.fail(line_of("act_bits"), f"{where}.act_bits",
                         "the last layer outputs its accumulator and takes no act_bits")
        else:
            values["act_bits"] = _integer(ctx, item, "act_bits", f"{where}.act_bits", 1, 8)
        if "sparsity" in item:
            values["sparsity"] = _sparsity(ctx, item, f"{where}.sparsity", values["weights"])
    if kind == "conv":
        k = values["k"] = _integer(ctx, item, "k", f"{where}.k", 1, 15)
        stride = values["stride"] = _integer(ctx, item, "stride", f"{where}.stride", 1, 15) if "stride" in item else 1
        pad = values["pad"] = _integer(ctx, item, "pad", f"{where}.pad", 0, 15) if "pad" in item else 0
        if pad >= k:
            ctx.fail(line_of("pad"), f"{where}.pad", f"must be smaller than k = {k}, got {pad}")
        if "bn" in item:
            if not isinstance(item["bn"], bool):
                ctx.fail(line_of("bn"), f"{where}.bn", f"must be true or false, got {item['bn']!r}")
            values["bn"] = item["bn"]
        out_h, out_w = _window(ctx, item, where, height, width, k, stride, 2 * pad, pad)
        out_shape = (values["out"], out_h, out_w)
    elif kind == "maxpool":
        k = values["k"] = _integer(ctx, item, "k", f"{where}.k", 1, 15)
        stride = values["stride"] = _integer(ctx, item, "stride", f"{where}.stride", 1, 15) if "stride" in item else k
        pad = values["pad"] = _integer(ctx, item, "pad", f"{where}.pad", 0, 15) if "pad" in item else 0
        if pad >= k:
            ctx.fail(line_of("pad"), f"{where}.pad", f"must be smaller than k = {k}, got {pad}")
        out_h, out_w = _window(ctx, item, where, height, width, k, stride, pad, pad)
        out_shape = (channels, out_h, out_w)
    else:
        out_shape = (values["out"], 1, 1)       # a 1x1 map of `out` channels
    if "fold" in item:
        values["fold"] = _fold(ctx, item, where, channels, values["out"])
    return Layer(out_shape=out_shape, key_lines=tuple(item.key_lines.items()), **values)


def _fold(ctx, item, where, cin, cout):
    spec = _mapping(ctx, item, "fold", f"{where}.fold", "{lanes: L, simd: S}")
    _check_keys(ctx, spec, FOLD_KEYS, f"{where}.fold.")
    for key in FOLD_KEYS:
        if key not in spec:
            ctx.fail(spec.line, f"{where}.fold.{key}", "missing")
    lanes_hi, simd_hi = fold_limits()
    lanes = _integer(ctx, spec, "lanes", f"{where}.fold.lanes", 1, lanes_hi)
    simd = _integer(ctx, spec, "simd", f"{where}.fold.simd", 1, simd_hi)
    if cout % lanes:
        ctx.fail(spec.key_lines["lanes"], f"{where}.fold.lanes",
                 f"must divide the layer's {cout} output channels, got {lanes}")
    if cin % simd:
        ctx.fail(spec.key_lines["simd"], f"{where}.fold.simd",
                 f"must divide the layer's {cin} input channels, got {simd}")
    return lanes, simd


def _check_adjacent_folds(ctx, items, layers):
    """Contract 7: a raster stage's L and the next stage's S divide one another (a width
    adapter joins them); checked where the plan fixes both."""
    before = None          # (index, lanes) of the last weight layer with a fixed fold
    for index, layer in enumerate(layers):
        if not layer.has_weights:
            continue
        if layer.fold and before:
            lanes, simd = before[1], layer.fold[1]
            if lanes % simd and simd % lanes:
                spec = items[index]["fold"]
                ctx.fail(spec.key_lines["simd"], f"layers[{index}].fold.simd",
                         f"must divide or be a multiple of layers[{before[0]}]'s {lanes} lanes "
                         f"(a width adapter joins them), got {simd}")
        before = (index, layer.fold[0]) if layer.fold else None


def _window(ctx, item, where, height, width, k, stride, pad_total, pad):
    if k > height + pad_total or k > width + pad_total:
        ctx.fail(item.key_lines["k"], f"{where}.k",
                 f"window {k}x{k} does not fit the {height}x{width} input"
                 + (f" padded by {pad}" if pad else ""))
    return (height + pad_total - k) // stride + 1, (width + pad_total - k) // stride + 1


# --------------------------------------------------------------------------- block limits

def _params(module_name):
    import importlib
    return {p.name: p for p in importlib.import_module(module_name).BLOCK.params}


def fold_limits() -> tuple[int, int]:
    """The largest lanes and simd the MAC array takes (its parameter table)."""
    mac = _params("blocks.mac")
    return mac["lanes"].hi, mac["simd"].hi


def frame_flow_available() -> bool:
    """Whether the frame data flow's stage exists yet (docs/conventions.md Contract 6; issue 13)."""
    import importlib.util
    try:
        return importlib.util.find_spec("assemblies.conv_frame") is not None
    except ModuleNotFoundError:
        return False


def largest_divisor(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def check_buildable(plan: Plan) -> None:
    """Raise :class:`PlanError` (``file:line: layers[i].field: ...``) for the first layer
    whose shape the blocks cannot build in any data flow the plan allows, naming the
    block's limit, or whose fixed data flow breaks Contract 6's order rule.  Hardware
    only: a plan the blocks cannot build may still be quantized."""
    frame_ok = frame_flow_available()
    for index, layer in enumerate(plan.layers):
        if not layer.has_weights:
            problem = row_limit(layer)        # the pool stage takes either order
        elif layer.dataflow == "frame" and not frame_ok:
            problem = ("dataflow", "the frame data flow is not built yet "
                       "(assemblies/conv_frame.py); use row or auto")
        elif layer.dataflow == "frame":
            problem = frame_limit(layer)
        elif layer.dataflow == "row" or not frame_ok:
            problem = row_limit(layer)
        else:
            problem = row_limit(layer) and frame_limit(layer)
            if problem:
                problem = (problem[0], f"{row_limit(layer)[1]}; as frame: {problem[1]}")
        if problem:
            field_name, message = problem
            raise PlanError(f"{plan.path}:{layer.line_of(field_name)}: "
                            f"layers[{index}].{field_name}: {message}")
    _check_flow_order(plan)


def _check_flow_order(plan: Plan) -> None:
    """Contract 6: a frame conv with Cout/L > 1 groups outputs group-major, which only
    frame buffers and pools take, so no later conv may be fixed to row.  The groups are
    certain when the plan fixes L below Cout or Cout exceeds the MAC's lanes."""
    lanes_hi = fold_limits()[0]
    grouped = None                    # (index, groups) of such a frame conv
    for index, layer in enumerate(plan.layers):
        if not layer.has_weights:
            continue
        if grouped and layer.dataflow == "row":
            raise PlanError(
                f"{plan.path}:{layer.line_of('dataflow')}: layers[{index}].dataflow: must be "
                f"frame: layers[{grouped[0]}] is frame-based with Cout/L = {grouped[1]} groups, "
                f"and its group-major output goes only into frame buffers and pools "
                f"(Contract 6)")
        if layer.dataflow == "frame" and not layer.final:
            lanes = layer.fold[0] if layer.fold else largest_divisor(layer.out, lanes_hi)
            if layer.out // lanes > 1:
                grouped = (index, layer.out // lanes)


def frame_limit(layer: Layer):
    """``(field, message)`` naming the block limit a frame-based stage of ``layer`` breaks
    (its frame buffer's window, stride, padding, map and channels; the MAC's dot
    product), or None."""
    _, h, w = layer.in_shape
    fb = _params("blocks.frame_buffer")
    problem = _window_limit(layer, fb, "frame-based", "the frame buffer", "frame_buffer")
    if problem:
        return problem
    for name, size in (("height", h), ("width", w)):
        if size > fb[name].hi:
            return "type", (f"the frame buffer takes maps up to {fb[name].hi} in {name} "
                            f"(frame_buffer's {name}), got {size}")
    return None


def _window_limit(layer: Layer, params: dict, flow: str, what: str, block: str):
    """The limits a conv or dense stage's window block (``params``: its parameter table)
    and the MAC put on ``layer``: the dense layer's map, K, stride, pad, channels, and the
    dot product's length."""
    c, h, w = layer.in_shape
    if layer.type == "dense" and (h != w or h > params["k"].hi):
        return "type", (f"a {flow} dense layer's window is its whole input map, which must be "
                        f"square and at most {params['k'].hi}x{params['k'].hi} ({block}'s k), "
                        f"got {h}x{w}")
    checks = [("k", layer.window, params["k"]), ("stride", layer.stride, params["stride"]),
              ("pad", layer.pad, params["pad"]), ("type", c, params["channels"])]
    problem = _over_limit(checks, what, block)
    if problem:
        return problem
    reduce_hi = _params("blocks.mac")["reduce"].hi
    if layer.reduce > reduce_hi:
        return "type", (f"a dot product of K*K*Cin = {layer.reduce} exceeds mac_array's reduce "
                        f"limit {reduce_hi}")
    return None


def _over_limit(checks, what, block):
    for field_name, value, param in checks:
        if value > param.hi:
            name = "input channels" if field_name == "type" else field_name
            return field_name, (f"{what} takes {name} up to {param.hi} ({block}'s "
                                f"{param.name}), got {value}")
    return None


def row_limit(layer: Layer, simd: int | None = None):
    """``(field, message)`` naming the block limit a row-based stage of ``layer`` breaks, or
    None.  ``simd`` is the fold's S (default: the plan's, else the largest the MAC takes)."""
    from blocks import line_buffer
    c, h, w = layer.in_shape
    if layer.type == "maxpool":             # the pool stage is blocks/maxpool.py
        pool = _params("blocks.maxpool")
        checks = [("k", layer.k, pool["k"]), ("stride", layer.stride, pool["stride"]),
                  ("pad", layer.pad_after, pool["pad_end"]), ("type", c, pool["channels"])]
        return _over_limit(checks, "the max-pool", "maxpool")
    lb, mac = _params("blocks.line_buffer"), _params("blocks.mac")
    problem = _window_limit(layer, lb, "row-based", "the line buffer", "line_buffer")
    if problem:
        return problem
    simd = simd or (layer.fold[1] if layer.fold else largest_divisor(c, mac["simd"].hi)
                    if layer.has_weights else c)
    depth = line_buffer.ring_rows(layer.window, layer.stride) * w * (c // simd)
    if depth > line_buffer.MAX_DEPTH:
        return ("fold" if layer.fold else "type"), (
            f"the line buffer needs (k+stride)*W*Cin/S = {depth} words at S = {simd}, beyond "
            f"line_buffer's {line_buffer.MAX_DEPTH}")
    return None


# --------------------------------------------------------------------------- scalars

def _value(ctx, mapping, key):
    return mapping[key], mapping.key_lines[key]


def _integer(ctx, mapping, key, field_name, low, high):
    value, line = _value(ctx, mapping, key)
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.fail(line, field_name, f"must be an integer in {low}..{high}, got {value!r}")
    if not low <= value <= high:
        ctx.fail(line, field_name, f"must be an integer in {low}..{high}, got {value}")
    return value


def _number(ctx, mapping, key, field_name, *, low=None, high=None, low_open=False):
    value, line = _value(ctx, mapping, key)
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", value.strip()):
        value = float(value)          # YAML 1.1 reads 1e9 (no dot, no sign) as a string
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        ctx.fail(line, field_name, f"must be a number, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        ctx.fail(line, field_name, f"must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and value > high:
        ctx.fail(line, field_name, f"must be <= {high}, got {value}")
    return float(value)


def _string(ctx, mapping, key, field_name):
    value, line = _value(ctx, mapping, key)
    if not isinstance(value, str) or not value.strip():
        ctx.fail(line, field_name, f"must be a non-empty string, got {value!r}")
    return value


def _choice(ctx, mapping, key, field_name, choices):
    value, line = _value(ctx, mapping, key)
    if value not in choices:
        ctx.fail(line, field_name, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def _sparsity(ctx, mapping, field_name, weights):
    value, line = _value(ctx, mapping, "sparsity")
    if value == "auto":
        result = "auto"
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        ctx.fail(line, field_name, f"must be a fraction in [0, 1) or auto, got {value!r}")
    else:
        result = float(value)
    if weights == "binary" and result != 0:
        ctx.fail(line, field_name, "binary weights have no zero code and cannot be pruned")
    return result
