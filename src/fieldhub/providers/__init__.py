"""Provider folders: one per provider, found by the registry through provider.toml."""
