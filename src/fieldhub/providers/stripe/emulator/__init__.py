"""Stripe's local stand-in: Connect, Checkout (card and ACH), payments, refunds, payouts, events and webhooks."""

from fieldhub.hub.emulator import EmulatorConfig
from fieldhub.providers.stripe.emulator.app import StripeEmulator


def create_emulator(config: EmulatorConfig) -> StripeEmulator:
    return StripeEmulator(config)


__all__ = ["StripeEmulator", "create_emulator"]
