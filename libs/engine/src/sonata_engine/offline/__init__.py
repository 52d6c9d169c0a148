"""The final re-alignment of a whole performance, which may revise the live decisions."""

from sonata_engine.offline.align import align_offline

__all__ = ["align_offline"]
