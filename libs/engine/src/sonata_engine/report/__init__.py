"""The final report: build_report and the Report it returns."""

from sonata_engine.report.build import build_report, score_scope, timing_tolerance_ms
from sonata_engine.report.model import BAR_ROW_DTYPE, FORMULA, NOTE_ROW_DTYPE, Finding, Report

__all__ = [
    "BAR_ROW_DTYPE",
    "FORMULA",
    "NOTE_ROW_DTYPE",
    "Finding",
    "Report",
    "build_report",
    "score_scope",
    "timing_tolerance_ms",
]
