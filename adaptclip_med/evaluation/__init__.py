"""Evaluation: streaming metrics (exact image level, binned pixel level, AUPRO) and reports.

:class:`MetricAccumulator` / :class:`ClassMetrics` accumulate while a model runs;
:func:`adaptclip_med.evaluation.report.write_report` turns per-(shots, seed, class) results into
Markdown/CSV tables and PNG plots.
"""
