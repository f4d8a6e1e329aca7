"""quant: numerics only (fixed point, quantization, pruning, sparsity search, the integer
reference model, ROM image writers).  Imports neither ``blocks`` nor ``assemblies``."""
