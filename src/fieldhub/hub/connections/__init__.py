"""Connections: one business's link to one provider account, its encrypted tokens, status and health."""
