"""Benchmarks: each module has `run(args) -> dict` and prints one JSON object via `fieldhub bench <name> --json`."""
