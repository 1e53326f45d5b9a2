"""Accounting, written once: the flows and pages every ledger shares (see protocol.py for what a ledger supplies)."""
