"""Payments (placeholder)."""


def install(emu):
    pass
