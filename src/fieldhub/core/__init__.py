"""The business's own records. Knows nothing of providers."""
