"""adaptclip-med review dashboard (Streamlit entry point of a source checkout).

Start it with ``adaptclip-med dashboard --data-root DIR`` (which runs the in-package entry
``adaptclip_med/dashboard/entry.py`` with the configuration and the right Streamlit flags); the
pages live in :mod:`adaptclip_med.dashboard`, the logic they call in :mod:`adaptclip_med.review`.
"""

from adaptclip_med.dashboard.app import main

main()
