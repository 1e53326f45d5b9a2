"""Voyage AI: a provider folder (provider.toml says what and where; README.md how to set it up)."""
