"""Hand-written VJP rules for array structure: shapes, slices, indexing and casts."""
