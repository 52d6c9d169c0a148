"""Sonata db: the library of pieces and the practice record."""
