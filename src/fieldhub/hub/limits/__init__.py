"""Tables behind the shared rate and concurrency limiter (the logic lives in fieldhub.hub.ratelimit)."""
