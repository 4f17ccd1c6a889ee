"""How ``--help`` looks: flags shown as flags, arguments in usage lines as ``NAME``, 120 columns.

Typer's Rich help prints every boolean flag with a ``<bool>`` value (``--debug <bool>`` reads as if
it took an argument), writes required arguments as ``{query}`` in usage lines, and renders at 80
columns when the output is not a terminal (pipes, ``| less``, CI logs), cutting long help texts
with an ellipsis.  These three presentation details are adjusted here, once, for the whole app.
"""

from __future__ import annotations

import os
import shutil
import sys

HELP_WIDTH = 120


def _help_width() -> int:
    if os.environ.get("TERMINAL_WIDTH") or os.environ.get("COLUMNS"):
        return int(os.environ.get("TERMINAL_WIDTH") or os.environ["COLUMNS"])
    if sys.stdout.isatty():
        return min(HELP_WIDTH, shutil.get_terminal_size((HELP_WIDTH, 24)).columns)
    return HELP_WIDTH


def apply() -> None:
    """Patch typer's help rendering (idempotent; a no-op where typer's internals differ)."""
    try:
        from typer import core, rich_utils
    except ImportError:  # pragma: no cover - typer without rich
        return
    option = getattr(core, "TyperOption", None)
    if option is not None and hasattr(option, "display_type_rich") and not getattr(option, "_adaptclip_styled", False):
        original = option.display_type_rich

        def display_type_rich(self, ctx):  # type: ignore[no-untyped-def]
            if getattr(self, "is_flag", False) and getattr(self, "metavar", None) is None:
                return None
            return original(self, ctx)

        option.display_type_rich = display_type_rich
        option._adaptclip_styled = True
    argument = getattr(core, "TyperArgument", None)
    if argument is not None and hasattr(argument, "_usage_display_name"):
        def usage_name(self):  # type: ignore[no-untyped-def]
            name = str(self.display_name_raw).upper()
            name = name if self.required else f"[{name}]"
            return name + ("..." if self.nargs != 1 else "")

        argument._usage_display_name = usage_name
    if hasattr(rich_utils, "MAX_WIDTH") and not os.environ.get("TERMINAL_WIDTH"):
        rich_utils.MAX_WIDTH = _help_width()
