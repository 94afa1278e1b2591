"""Hand-written VJP rules for linear algebra: ``dot_general`` and ``conv_general_dilated``."""
