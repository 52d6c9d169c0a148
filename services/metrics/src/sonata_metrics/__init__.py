"""Sonata metrics: business rollups from domain events."""
