"""Tests of the QuickBooks provider and its emulator."""
