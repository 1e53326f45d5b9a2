"""Tests of the Stripe provider folder."""
