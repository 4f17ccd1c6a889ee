"""``adaptclip-med dashboard``: start the Streamlit review dashboard with the right flags.

Streamlit owns its own command line, so the configuration (data roots, output folder, model
options) travels as a JSON file named in an environment variable.  The file watcher is turned off
(it trips over torch's lazy modules) and the server listens on loopback unless told otherwise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import typer

from adaptclip_med.cli import common, options
from adaptclip_med.demo.bank import DEMO_BANK
from adaptclip_med.errors import InputError
from adaptclip_med.review.config import CONFIG_ENV, DEFAULT_MAX_UPLOAD_MB, DashboardConfig
from adaptclip_med.utils.redact import describe_path

APP = Path(__file__).resolve().parents[1] / "dashboard" / "entry.py"
DEMO_DATA = "demo_data"


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)


def streamlit_command(app_path: Path, port: int, address: str, max_upload_mb: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(app_path),
            "--server.headless", "true", "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--server.port", str(port), "--server.address", address, "--server.maxUploadSize", str(max_upload_mb),
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal", "--theme.base", "dark"]


def demo_data_root(output: Path) -> Path:
    """The synthetic phantom study and normal references, made once under the output folder."""
    from adaptclip_med.demo.dataset import make_ct_demo_dataset

    root = output / DEMO_DATA
    if not (root / "study").is_dir():
        make_ct_demo_dataset(root, seed=0, normals=3)
    return root


def demo_bank(data_root: Path, banks: Path) -> Path:
    """A reference bank of the demo's normal phantoms, built once, so a first-time user can open the
    demo study and score it few-shot straight away (the library page can build others)."""
    from adaptclip_med.demo.bank import ensure_demo_bank
    from adaptclip_med.demo.run import demo_options
    from adaptclip_med.volume.pipeline import model_for

    folder = data_root / "normals"
    if not folder.is_dir():  # a demo folder made before the CT-like phantoms
        folder = data_root / "references"
    scans = sorted(p for p in folder.iterdir() if p.is_dir())
    if not (banks / DEMO_BANK / "bank.json").is_file():
        typer.echo(f"building the demo reference bank '{DEMO_BANK}' from {len(scans)} normal phantoms (demo model)")
    options = demo_options()
    return ensure_demo_bank(scans, model_for(options), options.preprocessing(), banks, DEMO_BANK)


_ADAPTERS = typer.Option(None, "--adapters", help="Trained weights of the method (.safetensors or released .pth), or 'untrained'. Without them a trainable method (adaptclip, adaclip) only reviews existing results; winclip needs none.")


@common.user_errors
@common.model_options(adapters_option=_ADAPTERS)
def dashboard(
    data_root: list[Path] = typer.Option([], "--data-root", help="Folder the dashboard may read studies and normal scans from; repeat for several."),
    output: Path = typer.Option(Path("review_output"), "--output", help="Where sign-offs (reviews.sqlite), scored studies and exports are written."),
    results: list[Path] = typer.Option([], "--results", help="Batch or score output folder to list in the worklist; repeat for several."),
    port: int = typer.Option(8501, "--port", help="HTTP port."),
    address: str = typer.Option("127.0.0.1", "--address", help="Listen address (loopback by default; 0.0.0.0 exposes patient data to the network)."),
    references: str = typer.Option(None, "--references", help="Default reference bank for scoring (folder or name under the banks root)."),
    banks_root: Path = options.BanksRootOpt,
    window: str = options.WindowOpt,
    axis: str = options.AxisOpt,
    batch_size: int = options.BatchSizeOpt,
    show_patient_names: bool = typer.Option(False, "--show-patient-names", help="Show patient names from the DICOM headers in the series lists."),
    max_upload_mb: int = typer.Option(DEFAULT_MAX_UPLOAD_MB, "--max-upload-mb", help="Largest upload (MB) accepted by the page."),
    demo: bool = typer.Option(False, "--demo", help="The demo model (--adapters demo: trained on synthetic data) and synthetic phantom studies (no diagnostic value); no weights needed."),
    model: common.ModelChoice = None,
) -> None:
    """Start the review dashboard (reference library, worklist, viewer, sign-off) in the browser."""
    if not APP.is_file():
        raise InputError(f"{APP.name} is missing from the installed package: reinstall adaptclip-med")
    output = output.expanduser().resolve()
    output.mkdir(parents=True, exist_ok=True)
    roots = [p.expanduser().resolve() for p in data_root]
    for folder in [*roots, *results]:
        if not folder.is_dir():
            raise InputError(f"{describe_path(folder)}: not a folder")
    if demo:
        from adaptclip_med.demo.run import demo_options

        scoring = demo_options()
        banks = banks_root or output / "banks"
        if not roots:
            roots = [demo_data_root(output)]
            references = references or str(demo_bank(roots[0], banks))
    else:
        banks = options.banks_root(banks_root)
        scoring = options.scoring_options(model, require_weights=False, window=window, axis=axis, batch_size=batch_size)
    bank = options.resolve_bank(references, banks)
    config = DashboardConfig(data_roots=tuple(roots), output=output, banks_root=banks.expanduser().resolve(),
                             scoring=scoring.with_(bank=str(Path(bank).resolve())) if bank else scoring, model_configured=demo or model.adapters is not None or not _trainable(model.method),
                             results=tuple(p.expanduser().resolve() for p in results), show_patient_names=show_patient_names,
                             max_upload_mb=max_upload_mb, demo=demo)
    with tempfile.TemporaryDirectory(prefix="adaptclip-dashboard-") as folder:
        config_file = config.save(Path(folder) / "dashboard.json")
        env = {**os.environ, CONFIG_ENV: str(config_file)}
        typer.echo(f"review dashboard on http://{address}:{port}  (output: {output}; Ctrl-C stops it)")
        code = _serve(streamlit_command(APP, port, address, max_upload_mb), env)
    raise typer.Exit(code)


def _trainable(method: str) -> bool:
    from adaptclip_med.methods import get_method

    return get_method(method).trainable


def _serve(command: list[str], env: dict[str, str]) -> int:
    """Run Streamlit until it exits; Ctrl-C or SIGTERM stop it too (never leaving it orphaned)."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    server: subprocess.Popen | None = None
    try:
        server = subprocess.Popen(command, env=env)
        return server.wait()
    except KeyboardInterrupt:
        if server is not None:
            server.terminate()
            server.wait()
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)

