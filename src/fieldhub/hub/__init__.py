"""Provider-agnostic machinery: the hard parts, written once."""
