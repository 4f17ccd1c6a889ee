"""Pages of the review dashboard; logic lives in :mod:`adaptclip_med.review`."""
