"""fieldhub: the Integrations Hub of a field-service business."""

__version__ = "0.1.0"
