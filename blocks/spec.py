"""What every block module declares about itself (``docs/conventions.md`` §4).

A block module defines one :class:`BlockDef`. Its parameter table is the single source for

* validation in the block's ``@block`` function (``ValueError`` naming the parameter and
  the allowed range),
* the ``cnn-ip block NAME --param value`` flags (``cnn_ip.cli``),
* the ``parameters`` section of the JSON sidecar (``cnn_ip.export``).

The export and co-simulation tools in ``cnn_ip`` find blocks through :func:`registry`, so a
new block only has to define ``BLOCK = BlockDef(...)`` in its module.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass, field
from typing import Any, Callable

# A plain (ASCII) Verilog identifier: module, memory and file names the Verilog carries
VERILOG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

REQUIRED = object()

# What every estimate returns (Contract 4 item 3): logic, memory bits and block-RAM units,
# latency in cycles, and the throughput as ``cycles`` per ``per`` (a unit string).
ESTIMATE_KEYS = ("lut", "ff", "dsp", "bram_bits", "bram", "latency", "cycles", "per")


class ParameterError(ValueError):
    """A parameter value (or a file a parameter names) is not acceptable.

    The message starts with the parameter's name: ``"lanes: must be ..."``.
    """


@dataclass(frozen=True)
class Param:
    """One block parameter.

    ``kind`` is ``int``, ``bool``, ``str`` (with ``choices``) or ``"path"`` (a file the
    CLI reads; from Python the already loaded object is passed instead).
    ``only_if`` names a condition under which the parameter is used (for the help text
    and the sidecar); validation of such dependencies lives in the block's cross check.
    """

    name: str
    kind: Any
    default: Any = REQUIRED
    lo: int | None = None
    hi: int | None = None
    choices: tuple | None = None
    help: str = ""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def allowed(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.kind is bool:
            return "true or false"
        if self.kind is int:
            return f"an integer in {self.lo}..{self.hi}"
        return "a file name" if self.kind == "path" else "a string"

    def check(self, value):
        """Return ``value`` if allowed, else raise ``ValueError`` naming the parameter."""
        if not self.allows(value):
            # the message (an array's repr, say) is built only on failure: the planner
            # validates thousands of candidate stages
            raise ParameterError(f"{self.name}: must be {self.allowed()}, got {value!r}")
        return value

    def allows(self, value) -> bool:
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return False
            if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
                return False
        elif self.kind is bool:
            return isinstance(value, bool)
        return self.choices is None or value in self.choices


@dataclass(frozen=True)
class BlockDef:
    """A block's contract: how to build, validate, wire, estimate and export it.

    Everything but ``validate``/``prepare`` takes the *prepared arguments* (``args``): what
    ``prepare`` made of the validated parameters, i.e. exactly what ``build`` takes.  Files
    a parameter names are read once, in ``prepare``; nothing after it reads them again.

    build:       the ``@block`` function; called as ``build(**ports, **args)``.
    params:      the parameter table.
    prepare:     ``prepare(params) -> args``; turns parameter values into what the
                 ``@block`` function takes (e.g. loads and encodes a weights file).
                 Default: the parameters themselves.
    ports:       ``ports(**args) -> {argument name: Signal or Axis}``, in port order,
                 fresh signals of the right widths (used for conversion and test benches).
    golden:      the pure-numpy model of the block's transform (signature is the block's).
    estimate:    ``estimate(**args) -> dict`` with the keys of :data:`ESTIMATE_KEYS`
                 (Contract 4 item 3): ``cycles`` clock cycles per ``per`` (a unit such as
                 ``"beat"`` or ``"window"``) is the sustained throughput.
    derived:     ``derived(**args) -> dict`` of derived widths reported in the sidecar.
    cross_check: ``cross_check(params)`` raises ``ValueError`` for combinations that are
                 individually valid but jointly not.
    write_files: ``write_files(args, out_dir) -> [file names]`` for files the Verilog
                 reads (ROM images).  Default: none.
    lint_waivers: ``{verilator rule: reason}``: warnings of these rules are waived line
                 by line in the generated ``NAME.vlt``, each with this reason.  Keep it
                 empty: remove a cause at its source rather than list it here.
    example:     ``example() -> parameter values`` of a representative configuration,
                 used by ``cnn-ip demo``.
    """

    name: str
    build: Callable
    params: tuple[Param, ...]
    ports: Callable[..., dict]
    golden: Callable
    estimate: Callable[..., dict]
    derived: Callable[..., dict] = lambda **p: {}
    cross_check: Callable[[dict], None] = lambda p: None
    prepare: Callable[[dict], dict] = lambda p: dict(p)
    write_files: Callable[[dict, str], list] = lambda kwargs, out_dir: []
    lint_waivers: dict = field(default_factory=dict)
    example: Callable[[], dict] = dict

    def validate(self, **values) -> dict:
        """Fill defaults and check every parameter; raise ``ParameterError`` on the first."""
        known = {p.name: p for p in self.params}
        for name in values:
            if name not in known:
                raise ParameterError(f"{name}: unknown parameter of {self.name} "
                                 f"(known: {', '.join(known)})")
        out = {}
        for p in self.params:
            value = values.get(p.name, p.default)
            if value is REQUIRED:
                raise ParameterError(f"{p.name}: required, must be {p.allowed()}")
            out[p.name] = p.check(value)
        try:
            self.cross_check(out)
        except ParameterError:
            raise
        except ValueError as error:
            raise ParameterError(str(error)) from None
        return out

    def prepared(self, **values) -> tuple[dict, dict]:
        """``(params, args)``: validated values and the prepared arguments ``build`` takes.

        A ``ValueError`` from ``prepare`` (e.g. a bad weights file) becomes a
        ``ParameterError``.
        """
        params = self.validate(**values)
        try:
            return params, self.prepare(params)
        except ParameterError:
            raise
        except ValueError as error:
            raise ParameterError(str(error)) from None


def weight_params() -> tuple[Param, Param]:
    """``weights`` and ``wbits``, as every block that takes weights declares them.

    The values allowed are ``quant.weight_modes``'s; ``wbits`` is N, the bits of an
    ``int`` weight, and is ignored for ``binary`` and ``ternary``.
    """
    from quant import weight_modes

    lo, hi = weight_modes.WBITS_RANGE
    return (Param("weights", str, choices=weight_modes.KINDS, help="weight mode"),
            Param("wbits", int, default=8, lo=lo, hi=hi,
                  help="bits of an int weight (int mode only)"))


def check_width(port: str, signal, expected: int) -> None:
    """Raise ``ParameterError`` if ``signal`` is not ``expected`` bits wide."""
    if len(signal) != expected:
        raise ParameterError(f"{port}: is {len(signal)} bits wide, expected {expected}")


def registry(packages=("blocks",)) -> dict[str, BlockDef]:
    """Every ``BlockDef`` named ``BLOCK`` in a module of ``packages``, by name.

    ``blocks`` knows nothing of the packages built on it: ``cnn_ip`` asks for
    ``("blocks", "assemblies")`` so that stages register themselves the same way.
    """
    found = {}
    for package_name in packages:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package_name}.{info.name}")
            block_def = getattr(module, "BLOCK", None)
            if isinstance(block_def, BlockDef):
                if block_def.name in found and found[block_def.name] is not block_def:
                    raise ValueError(f"two blocks are named {block_def.name}")
                found[block_def.name] = block_def
    return dict(sorted(found.items()))
