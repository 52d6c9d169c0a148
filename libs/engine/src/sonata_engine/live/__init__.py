"""Live score following: one judgement per note, as it arrives."""

from sonata_engine.live.session import LiveSession

__all__ = ["LiveSession"]
