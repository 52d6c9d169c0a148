"""Sonata payment: plans, checkout, webhooks, entitlements and credits."""
