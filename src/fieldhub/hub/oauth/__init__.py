"""OAuth for every provider: authorize and one callback, single-use state, PKCE, token refresh under a DB lock."""
