"""Per-layer stages built from blocks, and the network top that chains them."""
