"""One reference-bank build in its own process, for the concurrent-build test.

``python bank_build_worker.py ROLE BANKS_ROOT FLAGS WINDOW SCAN...``: role ``first`` pauses inside
its build (before calibration) until the ``second`` process has finished trying, so the two builds
of the same bank name really overlap.  Prints ``built`` or ``refused: <message>``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("ADAPTCLIP_MED_PROGRESS", "0")


def _wait_for(flag: Path, seconds: float = 300.0) -> None:
    deadline = time.time() + seconds
    while not flag.exists():
        if time.time() > deadline:
            raise TimeoutError(f"{flag.name} never appeared")
        time.sleep(0.05)


def main() -> int:
    role, banks_root, flags, window, *scans = sys.argv[1:]
    flags_dir = Path(flags)
    from adaptclip_med.errors import AdaptClipError
    from adaptclip_med.volume import bank_builder as bank_build
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.model.backbone_source import BackboneSpec
    from adaptclip_med.volume.options import ScoringOptions, SlicingOptions
    from adaptclip_med.volume.pipeline import model_for

    options = ScoringOptions(model=MethodSpec(backbone=BackboneSpec("adaptclip-tiny-vit", "random:0", offline=True), image_size=56),
                             slicing=SlicingOptions(window=window))
    method = model_for(options)
    if role == "first":
        real = bank_build.calibrate_bank

        def paused(*args, **kwargs):
            (flags_dir / "first-inside").touch()
            _wait_for(flags_dir / "second-done")
            return real(*args, **kwargs)

        bank_build.calibrate_bank = paused
    else:
        _wait_for(flags_dir / "first-inside")
    try:
        bank_build.build_reference_bank("head", [Path(s) for s in scans], method, options.preprocessing(),
                                        Path(banks_root), calibration_slices=2)
        print("built")
        return 0
    except AdaptClipError as exc:
        print(f"refused: {exc}")
        return 2
    finally:
        if role == "second":
            (flags_dir / "second-done").touch()


if __name__ == "__main__":
    sys.exit(main())
