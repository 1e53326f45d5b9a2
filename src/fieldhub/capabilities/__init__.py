"""Capabilities: each kind of integration (accounting, calendar, esign, ...) written once, in its own folder.

A capability is a package `capabilities/<kind>/`, named after its `Capability` value (hub/spec.py), that owns
what is true of every provider of that kind: its protocol (the small interface a provider folder implements,
with feature flags read per connection), its flows (`service.py`), its pages, its periodic work and a contract
test module (`tests/capabilities/<kind>/`) that runs every provider of the kind against its emulator.

What the house finds by folder, as it finds providers (no central list, see hub/registry.py):
- `routes.py` defining `router`: included by `fieldhub.main.route_modules()` after the shared routes.
- `templates/`: page templates, named "<kind>/<page>.html" (web/templating.py).
- `tasks.py` defining `periodic_tasks(env) -> list[PeriodicTask]`: run by the embedded dispatcher and by
  `fieldhub worker`s alike (hub/sync/dispatch.py), each task once per round across all processes.

A capability knows no provider by name: it finds its providers with `registry.providers_of(kind)` and a
provider's implementation with `registry.import_module(key, "<module>")` (the module name is the capability's
choice: e.g. `ledger`, `calendar`). Its pages use `fieldhub.web.kit`, never a private helper of `web/routes/`.
Providers never import each other; a capability never imports `web.routes`.
"""
