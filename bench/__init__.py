"""Benchmarks of the comparison engine against ground truth and the published peers.

Not part of the workspace and never imported by the fleet: run as ``python -m bench.<module>``
with the ``bench`` dependency group (``make bench``).
"""
