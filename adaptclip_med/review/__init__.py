"""Library side of the review dashboard: allowed-roots path safety, the SQLite sign-off store,
worklists, study discovery, viewer data, findings, exports and reports.

Nothing here imports Streamlit, so the same code is testable without a browser and reusable from
other front ends.
"""
