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
# quantize.utopia: the Chebyshev scalarization's utopia, in points of the measure above the
# base model's
UTOPIAS = (0.0, 100.0)
