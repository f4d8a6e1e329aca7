"""Three fixes to MyHDL 0.11, installed when ``blocks`` is imported: two to its elaboration,
one to its Verilog converter.

**Speed.** MyHDL asks, for every ``@block`` call and every ``@always`` / ``@instance``
generator, who its caller is (``inspect.stack()``, which reads source lines for every frame
of a deep stack only for MyHDL to use the frame and the function name) and what its source
is (``inspect.getsource`` plus a pure-Python re-tokenizing dedent, once per generator
*instance*, although all instances of one generator share one code object).  On the
digits network these lookups were most of the conversion's CPU time: 47.7 s, 5.6 s with
this module.  MyHDL's modules get an ``inspect`` whose frame walks return the same records
(frame, file, line, function) without source context and whose source lookups are memoised
per code object; the dedent is memoised per source text.

**Deterministic Verilog.** MyHDL collects the signal names a generator reads and writes in
sets and writes sensitivity lists and reset branches in their iteration order, which
follows the process's string-hash seed (``PYTHONHASHSEED``): ``cnn-ip block maxpool`` gave
a different, equivalent file on every run.  Those sets now iterate in sorted order.

**Signed operands of nested expressions.** In a signed expression MyHDL's Verilog
converter writes an unsigned operand as ``$signed({1'b0, x})``, so that Verilog does not
evaluate the whole expression unsigned; but it sets that context once per operator and an
operand that is itself an expression (or a slice, an index, a comparison) clears it, so
the operand after it lost its cast: ``(p_high << 17) + p_low`` became unsigned, ``p_high``
was zero-extended, and requant's two-multiplier join gave wrong negative products in
Verilog only (found by a random network: 95 of 512 outputs of a first layer with 7-bit
weights).  The converter now sets the context before each operand of a binary operator
and of a comparison.

``tests/blocks/test_myhdl_patches.py`` checks that the Verilog is byte-identical with
MyHDL's own lookups, and across hash seeds, and the nested expression in Icarus.
"""
import ast
import functools
import inspect
import sys
import types

import myhdl._block
import myhdl._hdlclass
import myhdl._instance
import myhdl._misc
import myhdl._util
import myhdl._visitors
import myhdl._Waiter
from myhdl.conversion import _toVerilog

# The MyHDL modules that call inspect's frame walks or source lookups (myhdl==0.11.52).
PATCHED = (myhdl._block, myhdl._instance, myhdl._misc, myhdl._hdlclass, myhdl._util,
           myhdl._Waiter)


def _records(frame) -> list[inspect.FrameInfo]:
    records = []
    while frame is not None:
        code = frame.f_code
        records.append(inspect.FrameInfo(frame, code.co_filename, frame.f_lineno, code.co_name,
                                         None, None))
        frame = frame.f_back
    return records


def _per_code(lookup):
    """``lookup(obj)`` memoised on a function's code object (every other object uncached)."""
    cache = {}

    def cached(obj):
        code = getattr(obj, "__code__", None)
        if code is None:
            return lookup(obj)
        if code not in cache:
            cache[code] = lookup(obj)
        return cache[code]
    return cached


class _FastInspect(types.ModuleType):
    """``inspect`` with the frame walks and source lookups replaced; any other name is the
    real one."""

    def __getattr__(self, name):
        return getattr(inspect, name)

    @staticmethod
    def stack(context=1):
        return _records(sys._getframe(1))

    @staticmethod
    def getouterframes(frame, context=1):
        return _records(frame)

    getsource = staticmethod(_per_code(inspect.getsource))
    getsourcefile = staticmethod(_per_code(inspect.getsourcefile))
    getsourcelines = staticmethod(_per_code(inspect.getsourcelines))


class _NameSet(set):
    """A set of signal names that iterates in sorted order.  MyHDL collects the names a
    generator reads and writes in sets and writes sensitivity lists and reset branches in
    their iteration order, which follows the process's string-hash seed: the same design
    converted twice gave different (equivalent) Verilog."""

    def __iter__(self):
        return iter(sorted(set.__iter__(self)))


def _sorted_names(init):
    @functools.wraps(init)
    def wrapped(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.inputs, self.outputs, self.inouts = _NameSet(), _NameSet(), _NameSet()
    wrapped.sorted_names = True
    return wrapped


def _operand_context(visit_binop, visit_compare):
    """``_ConvertVisitor.visit_BinOp`` and ``visit_Compare`` with the signed context set
    before each operand rather than once before the first."""
    context_of = _toVerilog._context

    def operands(self, node, left, op, right):
        context = context_of.SIGNED if node.signed else None
        self.write("(")
        self.context = context
        self.visit(left)
        self.write(f" {op} ")
        self.context = context
        self.visit(right)
        self.write(")")
        self.context = None

    @functools.wraps(visit_binop)
    def binop(self, node):
        if isinstance(node.op, ast.Mod) and self.context == context_of.PRINT:
            return visit_binop(self, node)
        if isinstance(node.op, ast.RShift) and node.signed:
            self.write("$signed")      # as MyHDL writes it
        operands(self, node, node.left, _toVerilog.opmap[type(node.op)], node.right)

    @functools.wraps(visit_compare)
    def compare(self, node):
        operands(self, node, node.left, _toVerilog.opmap[type(node.ops[0])],
                 node.comparators[0])

    binop.operand_context = compare.operand_context = True
    return binop, compare


def install() -> None:
    fast = _FastInspect("inspect")
    for module in PATCHED:
        if getattr(module, "inspect", None) is inspect:
            module.inspect = fast
    visitor = myhdl._visitors._SigNameVisitor
    if not getattr(visitor.__init__, "sorted_names", False):
        visitor.__init__ = _sorted_names(visitor.__init__)
    if not hasattr(myhdl._util._dedent, "cache_info"):
        myhdl._util._dedent = functools.lru_cache(maxsize=None)(myhdl._util._dedent)
    converter = _toVerilog._ConvertVisitor
    if not getattr(converter.visit_BinOp, "operand_context", False):
        converter.visit_BinOp, converter.visit_Compare = _operand_context(
            converter.visit_BinOp, converter.visit_Compare)
