"""Xero: its emulator driven by the official SDK."""
