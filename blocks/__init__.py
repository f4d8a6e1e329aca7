"""blocks: reusable CNN-accelerator IP blocks in MyHDL, one block a module.

Every block module defines ``BLOCK = blocks.spec.BlockDef(...)`` (Contract 4 of
DESIGN.md); ``blocks.spec.registry()`` finds them all.  ``blocks.stream`` holds the
AXI4-Stream interface and the simulation helpers.
"""
