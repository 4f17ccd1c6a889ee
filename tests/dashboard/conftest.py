"""Shared fixtures for the dashboard tests: a small phantom data set and a tiny-model configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from adaptclip_med.review.config import CONFIG_ENV, DashboardConfig
from adaptclip_med.volume.options import ScoringOptions

from tests.support import tiny_models

TINY_OPTIONS = tiny_models.tiny_options()


@pytest.fixture(scope="session")
def tiny_options() -> ScoringOptions:
    return TINY_OPTIONS


@dataclass
class DemoData:
    root: Path
    study_dir: Path
    reference_dirs: list[Path]


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> DemoData:
    from adaptclip_med.demo.phantom import make_demo_dataset

    root = tmp_path_factory.mktemp("dashboard_data")
    paths = make_demo_dataset(root, seed=0, n_references=2, shape=(10, 64, 64))
    return DemoData(root, paths.study_dir, paths.reference_dirs)


@pytest.fixture()
def dashboard_config(tmp_path, demo_data, monkeypatch):
    """A configuration file for the app (tiny random model, phantom data), named in the environment."""

    def make(**changes) -> DashboardConfig:
        values = dict(data_roots=(demo_data.root,), output=tmp_path / "out", banks_root=tmp_path / "banks",
                      scoring=TINY_OPTIONS, model_configured=True)
        values.update(changes)
        config = DashboardConfig(**values)
        monkeypatch.setenv(CONFIG_ENV, str(config.save(tmp_path / "dashboard.json")))
        return config

    return make
