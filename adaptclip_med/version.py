"""The package version, on the ground floor so any module can stamp it without importing the package front.

``adaptclip_med/__init__.py`` re-exports it for users (``adaptclip_med.__version__``) and
``pyproject.toml`` reads it from here (``[tool.setuptools.dynamic]``), so this is the one place
the version is written.
"""

__version__ = "0.1.0"
