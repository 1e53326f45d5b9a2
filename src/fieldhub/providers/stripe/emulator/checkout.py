"""Checkout (placeholder)."""


def install(emu):
    pass
