"""Evaluation: streaming metrics (exact image level, binned pixel level, AUPRO) and reports.

:class:`MetricAccumulator` / :class:`ClassMetrics` accumulate while a model runs;
:func:`adaptclip_med.evaluation.report.write_report` turns per-(shots, seed, class) results into
Markdown/CSV tables and PNG plots.
"""

from adaptclip_med.evaluation.aupro import aupro_exact
from adaptclip_med.evaluation.metrics import (
    DEFAULT_BINS,
    METRIC_NAMES,
    ClassMetrics,
    ImageCurves,
    MetricAccumulator,
    mean_over_classes,
)

__all__ = [
    "DEFAULT_BINS",
    "METRIC_NAMES",
    "ClassMetrics",
    "ImageCurves",
    "MetricAccumulator",
    "aupro_exact",
    "mean_over_classes",
]
