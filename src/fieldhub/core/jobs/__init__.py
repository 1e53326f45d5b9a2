"""jobs: models, schemas and the service functions that are its only writers."""
