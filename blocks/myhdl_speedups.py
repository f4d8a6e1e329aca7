"""Faster MyHDL elaboration: MyHDL 0.11's frame and source lookups, without repeated work.

MyHDL elaborates a design by asking, for every ``@block`` call and every ``@always`` /
``@instance`` generator, who its caller is (``inspect.stack()``, which reads source lines
for every frame of a deep stack only for MyHDL to use the frame and the function name) and
what its source is (``inspect.getsource`` plus a pure-Python re-tokenizing dedent, once per
generator *instance*, although all instances of one generator share one code object).
On the digits network these lookups were most of the conversion's CPU time.

:func:`install` gives MyHDL's modules an ``inspect`` whose frame walks return the same
records (frame, file, line, function) without source context and whose source lookups are
memoised per code object, and memoises the dedent per source text.  The Verilog is
byte-identical (checked by ``tests/blocks/test_myhdl_speedups.py``).  It is installed when
``blocks`` is imported, so every block, stage and network built from Python gets it.
"""
import functools
import inspect
import sys
import types

import myhdl._block
import myhdl._hdlclass
import myhdl._instance
import myhdl._misc
import myhdl._util
import myhdl._Waiter

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


def install() -> None:
    fast = _FastInspect("inspect")
    for module in PATCHED:
        if getattr(module, "inspect", None) is inspect:
            module.inspect = fast
    if not hasattr(myhdl._util._dedent, "cache_info"):
        myhdl._util._dedent = functools.lru_cache(maxsize=None)(myhdl._util._dedent)
