"""The plan file: a YAML description of a network and how to build it (the layers part).

A plan is data, never code: it is read with ``yaml.SafeLoader`` (no tags, no objects)
through a subclass that records the line of every mapping key, so that every mistake is
reported as ONE line ``file:line: field: what is wrong`` (:class:`PlanError`, a
:class:`~cnn_ip.errors.UserError`, exit status 2 from the CLI).

Shape of a plan (see ``examples/digits.yaml``)::

    name: digits
    input: {channels: 1, height: 8, width: 8, bits: 8}
    dataset: digits
    layers:
      - {type: conv, out: 16, k: 3, pad: 1, act: relu, weights: int4, act_bits: 4}
      - {type: maxpool, k: 2}
      - {type: dense, out: 10, weights: ternary, sparsity: auto}
    quantize: {seed: 0, evaluations: 16}     # optional: settings of `cnn-ip quantize`

Layer types and keys (defaults in brackets):

* ``conv``: ``out``, ``k``, ``stride`` [1], ``pad`` [0], ``act`` relu|leaky|none [relu],
  ``slope`` (leaky only) [0.125], ``weights``, ``act_bits``, ``sparsity`` [0], ``bn`` [false]
* ``maxpool``: ``k``, ``stride`` [k]
* ``dense``: ``out``, ``act`` [relu, or none for the last layer], ``weights``, ``act_bits``,
  ``sparsity`` [0]

``weights`` is ``binary``, ``ternary`` or ``int2`` .. ``int8``; ``act_bits`` 1..8; ``sparsity``
a fraction in [0, 1) or ``auto`` (chosen by the Bayesian search; not for ``binary``, which
has no zero code).  The last layer is the classifier: a ``dense`` layer with ``act: none``
whose output is its accumulator, so it takes no ``act_bits``.  Every layer may carry a
``name`` (default ``<type><index>``) and a ``dataflow`` (row|frame|auto).

The planner's fields ``device``, ``clock_mhz`` and ``dataflow`` are accepted with basic
type checks and passed through uninterpreted (the planner's issue makes them final).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cnn_ip.errors import UserError
from quant import weight_modes

DATASETS = {"digits": {"shape": (1, 8, 8), "classes": 10}}
WEIGHT_MODES = weight_modes.PLAN_NAMES
ACTIVATIONS = ("relu", "leaky", "none")
DATAFLOWS = ("auto", "row", "frame")
TOP_KEYS = ("name", "input", "dataset", "layers", "quantize", "device", "clock_mhz", "dataflow")
INPUT_KEYS = ("channels", "height", "width", "bits")
QUANTIZE_KEYS = {"seed": int, "epochs": int, "qat_epochs": int, "search_epochs": int,
                 "final_epochs": int, "evaluations": int, "accuracy_budget": float,
                 "penalty": float, "mbits": int, "base_sparsity": float}
QUANTIZE_RANGES = {"mbits": (2, 16), "base_sparsity": (0, 0.95), "seed": (0, 2**32 - 1)}
COMMON_LAYER_KEYS = ("type", "name", "dataflow")
LAYER_KEYS = {
    "conv": ("out", "k", "stride", "pad", "act", "slope", "weights", "act_bits", "sparsity", "bn"),
    "maxpool": ("k", "stride"),
    "dense": ("out", "act", "slope", "weights", "act_bits", "sparsity"),
}


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


@dataclass(frozen=True)
class Plan:
    path: str
    name: str
    dataset: str
    input_shape: tuple            # (channels, height, width)
    input_bits: int
    layers: tuple
    quantize: dict = field(default_factory=dict)
    device: object = None
    clock_mhz: float | None = None
    dataflow: str = "auto"

    @property
    def classes(self) -> int:
        return DATASETS[self.dataset]["classes"]


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
        text = Path(path).read_text()
    except OSError as error:
        raise PlanError(f"{path}: cannot read: {error.strerror or error}") from None
    return parse_plan(text, path)


def parse_plan(text: str, path: str = "<plan>") -> Plan:
    ctx = _Context(path)
    loader = LineLoader(text)
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
        ctx.fail(1, "plan", "must be a mapping with name, input, dataset and layers")
    _check_keys(ctx, doc, TOP_KEYS, "")
    for key in ("name", "input", "dataset", "layers"):
        if key not in doc:
            ctx.fail(doc.line, key, "missing")
    name = _string(ctx, doc, "name", "name")
    dataset = _choice(ctx, doc, "dataset", "dataset", tuple(DATASETS))
    input_shape, input_bits = _input(ctx, doc, dataset)
    layers = _layers(ctx, doc, input_shape, DATASETS[dataset]["classes"])
    quantize = _quantize(ctx, doc)
    device = doc.get("device")
    if device is not None and not isinstance(device, (str, dict)):
        ctx.fail(doc.key_lines["device"], "device", "must be a device name or a mapping of budgets")
    clock = None
    if "clock_mhz" in doc:
        clock = _number(ctx, doc, "clock_mhz", "clock_mhz", low=0, low_open=True)
    dataflow = _choice(ctx, doc, "dataflow", "dataflow", DATAFLOWS) if "dataflow" in doc else "auto"
    return Plan(path=path, name=name, dataset=dataset, input_shape=input_shape,
                input_bits=input_bits, layers=layers, quantize=quantize, device=device,
                clock_mhz=clock, dataflow=dataflow)


def _check_keys(ctx, mapping, allowed, prefix):
    for key in mapping:
        if key not in allowed:
            ctx.fail(mapping.key_lines[key], prefix + key,
                     f"unknown key (allowed: {', '.join(allowed)})")


def _input(ctx, doc, dataset):
    spec = doc["input"]
    if not isinstance(spec, LineMap):
        ctx.fail(doc.key_lines["input"], "input", "must be a mapping {channels, height, width, bits}")
    _check_keys(ctx, spec, INPUT_KEYS, "input.")
    for key in ("channels", "height", "width"):
        if key not in spec:
            ctx.fail(spec.line, f"input.{key}", "missing")
    shape = tuple(_integer(ctx, spec, key, f"input.{key}", 1, 4096)
                  for key in ("channels", "height", "width"))
    bits = _integer(ctx, spec, "bits", "input.bits", 1, 32) if "bits" in spec else 8
    if bits != 8:
        ctx.fail(spec.key_lines["bits"], "input.bits",
                 f"the network input is 8-bit unsigned (DESIGN.md Contract 2), got {bits}")
    want = DATASETS[dataset]["shape"]
    if shape != want:
        ctx.fail(doc.key_lines["input"], "input",
                 f"dataset {dataset} has {want[0]}x{want[1]}x{want[2]} (channels x height x width) "
                 f"images, the plan says {shape[0]}x{shape[1]}x{shape[2]}")
    return shape, bits


def _quantize(ctx, doc):
    if "quantize" not in doc:
        return {}
    spec = doc["quantize"]
    if not isinstance(spec, LineMap):
        ctx.fail(doc.key_lines["quantize"], "quantize", "must be a mapping")
    _check_keys(ctx, spec, tuple(QUANTIZE_KEYS), "quantize.")
    out = {}
    for key, kind in QUANTIZE_KEYS.items():
        if key in spec:
            low, high = QUANTIZE_RANGES.get(key, (0, None))
            if kind is int:
                out[key] = _integer(ctx, spec, key, f"quantize.{key}", low, high or 10**9)
            else:
                out[key] = _number(ctx, spec, key, f"quantize.{key}", low=low, high=high)
    return out


def _layers(ctx, doc, input_shape, classes):
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
        layer = _layer(ctx, item, where, index, shape, last)
        if layer.name in names:
            ctx.fail(item.key_lines.get("name", item.line), f"{where}.name",
                     f"'{layer.name}' is used by an earlier layer")
        names.add(layer.name)
        layers.append(layer)
        shape = layer.out_shape
    last = layers[-1]
    if last.out != classes:
        ctx.fail(items[-1].key_lines["out"], f"layers[{len(items) - 1}].out",
                 f"the dataset has {classes} classes, the last layer has {last.out} outputs")
    return tuple(layers)


def _layer(ctx, item, where, index, in_shape, last):
    if "type" not in item:
        ctx.fail(item.line, f"{where}.type", f"missing (one of {', '.join(LAYER_KEYS)})")
    kind = _choice(ctx, item, "type", f"{where}.type", tuple(LAYER_KEYS))
    _check_keys(ctx, item, COMMON_LAYER_KEYS + LAYER_KEYS[kind], f"{where}.")
    if last and kind != "dense":
        ctx.fail(item.key_lines["type"], f"{where}.type", "the last layer must be the dense classifier")
    line_of = lambda key: item.key_lines.get(key, item.line)  # noqa: E731
    required = {"conv": ("out", "k", "weights"), "maxpool": ("k",), "dense": ("out", "weights")}[kind]
    if kind != "maxpool" and not last:
        required += ("act_bits",)
    for key in required:
        if key not in item:
            ctx.fail(item.line, f"{where}.{key}", "missing")
    values = {"type": kind, "line": item.line, "in_shape": in_shape}
    values["name"] = _string(ctx, item, "name", f"{where}.name") if "name" in item else f"{kind}{index}"
    if "dataflow" in item:
        values["dataflow"] = _choice(ctx, item, "dataflow", f"{where}.dataflow", DATAFLOWS)
    channels, height, width = in_shape
    if kind in ("conv", "maxpool") and in_shape[1:] == (0, 0):
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
        out_h, out_w = _window(ctx, item, where, height, width, k, stride, pad)
        out_shape = (values["out"], out_h, out_w)
    elif kind == "maxpool":
        k = values["k"] = _integer(ctx, item, "k", f"{where}.k", 1, 15)
        stride = values["stride"] = _integer(ctx, item, "stride", f"{where}.stride", 1, 15) if "stride" in item else k
        out_h, out_w = _window(ctx, item, where, height, width, k, stride, 0)
        out_shape = (channels, out_h, out_w)
    else:
        out_shape = (values["out"], 0, 0)       # a vector: (features, 0, 0)
    return Layer(out_shape=out_shape, **values)


def _window(ctx, item, where, height, width, k, stride, pad):
    if k > height + 2 * pad or k > width + 2 * pad:
        ctx.fail(item.key_lines["k"], f"{where}.k",
                 f"window {k}x{k} does not fit the {height}x{width} input"
                 + (f" padded by {pad}" if pad else ""))
    return (height + 2 * pad - k) // stride + 1, (width + 2 * pad - k) // stride + 1


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
