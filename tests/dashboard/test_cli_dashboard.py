"""``adaptclip-med dashboard``: Streamlit flags, configuration hand-over, input checks."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from adaptclip_med.cli import dashboard as dashboard_cli
from adaptclip_med.review.config import CONFIG_ENV, DashboardConfig


def _app() -> typer.Typer:
    app = typer.Typer()
    dashboard_cli.register(app)
    app.command("noop")(lambda: None)  # keep typer in multi-command mode
    return app


def _run(monkeypatch, args):
    seen = {}

    class FakeServer:
        def __init__(self, cmd, env):
            seen["cmd"] = cmd
            seen["config"] = DashboardConfig.from_json(open(env[CONFIG_ENV]).read())

        def wait(self):
            return 0

    monkeypatch.setattr(dashboard_cli.subprocess, "Popen", FakeServer)
    result = CliRunner().invoke(_app(), ["dashboard", *args])
    return result, seen


def test_streamlit_runs_headless_without_file_watcher_on_the_given_port(monkeypatch, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    result, seen = _run(monkeypatch, ["--data-root", str(data), "--output", str(tmp_path / "out"), "--port", "8765",
                                      "--adapters", "untrained", "--backbone", "adaptclip-tiny-vit",
                                      "--backbone-weights", "random:0", "--window", "brain", "--max-upload-mb", "50"])
    assert result.exit_code == 0, result.output
    cmd = seen["cmd"]
    flags = dict(zip(cmd[5::2], cmd[6::2]))
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("adaptclip_med/dashboard/entry.py")
    assert flags["--server.fileWatcherType"] == "none" and flags["--server.headless"] == "true"
    assert flags["--server.port"] == "8765" and flags["--server.address"] == "127.0.0.1"
    assert flags["--server.maxUploadSize"] == "50"
    config = seen["config"]
    assert config.data_roots == (data.resolve(),) and config.output == (tmp_path / "out").resolve()
    assert config.model_configured and config.scoring.model.backbone == "adaptclip-tiny-vit" and config.scoring.slicing.window == "brain"
    assert config.max_upload_mb == 50 and not config.show_patient_names


def test_without_adapters_the_dashboard_starts_for_review_only(monkeypatch, tmp_path):
    result, seen = _run(monkeypatch, ["--data-root", str(tmp_path), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert seen["config"].model_configured is False


def test_demo_makes_phantom_data_and_uses_the_demo_model(monkeypatch, tmp_path):
    from adaptclip_med.demo import dataset

    real = dataset.make_ct_demo_dataset
    monkeypatch.setattr(dataset, "make_ct_demo_dataset", lambda out, seed, normals: real(out, seed, normals, slices=3, size=64))
    result, seen = _run(monkeypatch, ["--demo", "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    config = seen["config"]
    root = (tmp_path / "out" / "demo_data").resolve()
    assert config.demo and config.model_configured and config.data_roots == (root,)
    assert (root / "study").is_dir() and len(list((root / "normals").iterdir())) == 3
    assert config.scoring.model.adapters == "demo" and config.banks_root == (tmp_path / "out" / "banks").resolve()
    # a first-time user can score the demo study few-shot at once: the demo bank is built and selected
    bank = (tmp_path / "out" / "banks" / dashboard_cli.DEMO_BANK).resolve()
    assert config.scoring.references.bank == str(bank) and (bank / "bank.json").is_file()
    assert json.loads((bank / "bank.json").read_text())["name"] == dashboard_cli.DEMO_BANK


def test_a_missing_data_root_is_one_line_error(monkeypatch, tmp_path):
    result, seen = _run(monkeypatch, ["--data-root", str(tmp_path / "nope"), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2 and "not a folder" in result.output and "cmd" not in seen


def test_config_round_trips_through_json(tmp_path):
    from adaptclip_med.volume.options import ScoringOptions

    config = DashboardConfig((tmp_path,), tmp_path / "o", tmp_path / "b", ScoringOptions.build(window="40,80", image_size=56),
                             results=(tmp_path / "r",), show_patient_names=True)
    assert DashboardConfig.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["scoring"]["slicing"]["window"] == "40,80"


def test_sigterm_stops_the_server_and_returns(tmp_path):
    """A service manager stopping the CLI must not leave Streamlit running."""
    import os
    import sys
    import time

    child = ("import os, signal, time; open(r'%s', 'w').write(str(os.getpid())); time.sleep(0.5); "
             "os.kill(os.getppid(), signal.SIGTERM); time.sleep(60)") % (tmp_path / "pid")
    started = time.monotonic()
    assert dashboard_cli._serve([sys.executable, "-c", child], dict(os.environ)) == 0
    assert time.monotonic() - started < 30
    pid = int((tmp_path / "pid").read_text())
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive
