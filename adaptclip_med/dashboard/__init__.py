"""Pages of the review dashboard (Streamlit); logic lives in :mod:`adaptclip_med.review`.

``entry.py`` is the Streamlit script; ``adaptclip-med dashboard`` runs it, and so does the thin
``dashboards/review_app.py`` of a source checkout.
"""
