"""blocks: reusable CNN-accelerator IP blocks in MyHDL, one block a module.

Every block module defines ``BLOCK = blocks.spec.BlockDef(...)`` (docs/conventions.md §4);
``blocks.spec.registry()`` finds them all.  ``blocks.stream`` holds the AXI4-Stream
interface and lane packing; the simulation kit is ``cnn_ip.simkit``.
"""
from blocks import myhdl_patches

myhdl_patches.install()
