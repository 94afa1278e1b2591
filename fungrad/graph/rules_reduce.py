"""Hand-written VJP rules for reductions, cumulative operations and pooling windows."""
