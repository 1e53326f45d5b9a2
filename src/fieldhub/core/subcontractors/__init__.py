"""Subcontractors and the sub-tickets of a job they are assigned."""
