"""The values a ``quantize:`` setting accepts, where both a plan (``cnn_ip.plan``) and
``quant.pipeline.check_settings`` check it.  Torch-free, so the plan loader reads the
same constants the pipeline and the search use instead of copies of them."""
from __future__ import annotations

# quantize.codes: the names of quant.pipeline.CODE_SETS, the codings the sparsity search
# counts bits in: what the decoder reads, or every coding of docs/sparse_format.md (the
# same set since the decoder reads /2; both stay accepted so earlier plans keep loading)
CODE_SET_NAMES = ("hardware", "all")
# quantize.structures (quant.search.structure_choices): unstructured pruning offered beside
# the block structures, or blocks only
STRUCTURE_OFFERS = ("any", "block")
# quantize.size_exponent: the range of quant.search.Objective.size_exponent
SIZE_EXPONENTS = (0.5, 4.0)
# quantize.scalarization: how quant.search.Objective folds size and accuracy into one
# number, a weighted sum or an augmented Chebyshev (max) of the two
SCALARIZATIONS = ("sum", "chebyshev")
# quantize.size_budget_mode: how the search keeps to size_budget: a penalty on every percent
# a point exceeds it, or every point filling it by construction (quant.search.search_space)
SIZE_BUDGET_MODES = ("penalty", "fill")
# quantize.utopia: the Chebyshev scalarization's utopia, in points of the measure above the
# base model's
UTOPIAS = (0.0, 100.0)
# The sparsity a pruned layer may reach: the search's range, and the base's
MAX_SPARSITY = 0.95
# Where an integer setting without a bound of its own stops (a typo, not a setting)
MAX_INTEGER = 10**9
# Every numeric quantize setting's range (low, high; None: MAX_INTEGER for an integer,
# unbounded for a number), which the plan loader (cnn_ip.plan, at the value's line), the
# flags of cnn-ip quantize and quant.pipeline.check_settings all apply
RANGES = {"seed": (0, 2**32 - 1), "epochs": (0, None), "qat_epochs": (0, None),
          "search_epochs": (0, None), "final_epochs": (0, None), "evaluations": (0, None),
          "confirm": (0, None), "accuracy_budget": (0, None), "penalty": (0, None),
          "accuracy_weight": (0, None), "mbits": (2, 16), "base_sparsity": (0, MAX_SPARSITY),
          "prune_steps": (1, 100), "size_exponent": SIZE_EXPONENTS, "utopia": UTOPIAS,
          "size_budget": (1, None), "threads": (1, None)}
INTEGER_SETTINGS = ("seed", "epochs", "qat_epochs", "search_epochs", "final_epochs",
                    "evaluations", "confirm", "mbits", "prune_steps", "size_budget", "threads")


def out_of_range(key: str, value) -> str | None:
    """What is wrong with ``value`` as the numeric setting ``key`` (``None``: nothing)."""
    low, high = RANGES[key]
    if key in INTEGER_SETTINGS:
        high = MAX_INTEGER if high is None else high
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"must be an integer in {low}..{high}, got {value}"
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or value in (float("inf"), float("-inf")):
        return f"must be a finite number, got {value}"
    if high is None and value < low:
        return f"must be >= {low:g}, got {value}"
    if high is not None and not low <= value <= high:
        return f"must be in {low:g}..{high:g}, got {value}"
    return None
