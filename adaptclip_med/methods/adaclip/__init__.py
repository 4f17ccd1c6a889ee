"""AdaCLIP as a registered method (``--method adaclip``); see ``method.py``."""

from adaptclip_med.methods.adaclip.method import AdaCLIPMethod
from adaptclip_med.methods.adaclip.weights import RELEASES, import_release

__all__ = ["AdaCLIPMethod", "RELEASES", "import_release"]
