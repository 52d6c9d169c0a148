"""Sonata notifications: email, SMS and push from domain events."""
