"""Sync: the ledger is the truth (DESIGN.md §3). Ledger, rules, engine, dispatch, runs."""
