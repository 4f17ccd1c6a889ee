"""The Streamlit script of the review dashboard: ``streamlit run`` this file (``adaptclip-med dashboard`` does)."""

from adaptclip_med.dashboard.app import main

main()
