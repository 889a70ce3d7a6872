"""One module per tab; each has a `build(ctx)` that lays out its components and wires them."""
