"""configs/metadata.json against the shipped schema, offline, as ``verify_metadata`` does it."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version

import pytest
from bundle_helpers import BUNDLE, CONFIGS

SCHEMA = BUNDLE / "schema" / "meta_schema_20240725.json"


def test_schema_rejects_metadata_without_a_required_key(tmp_path):
    from monai.bundle import verify_metadata

    meta = json.loads((CONFIGS / "metadata.json").read_text())
    for key in ("required_packages_version", "network_data_format"):
        broken = dict(meta)
        broken.pop(key)
        path = tmp_path / f"without_{key}.json"
        path.write_text(json.dumps(broken))
        with pytest.raises(ValueError, match=key):
            verify_metadata(meta_file=str(path), filepath=str(SCHEMA))


def test_version_is_in_changelog_and_io_keys_are_what_monai_tools_read():
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    assert meta["version"] in meta["changelog"]
    assert meta["schema"].endswith("/" + SCHEMA.name)
    image = meta["network_data_format"]["inputs"]["image"]
    pred = meta["network_data_format"]["outputs"]["pred"]
    assert (image["num_channels"], pred["num_channels"]) == (1, 1)
    assert "NOT FOR CLINICAL USE" in meta["intended_use"]


def test_required_packages_are_installed_at_least_at_the_stated_versions():
    from packaging.version import Version

    meta = json.loads((CONFIGS / "metadata.json").read_text())
    for package, stated in {**meta["required_packages_version"], "monai": meta["monai_version"],
                            "torch": meta["pytorch_version"], "numpy": meta["numpy_version"]}.items():
        try:
            installed = version(package)
        except PackageNotFoundError:
            pytest.fail(f"{package} listed in metadata.json is not installed")
        assert Version(installed.split("+")[0]) >= Version(stated), package


def test_verify_metadata_works_offline_with_the_shipped_schema(monkeypatch):
    import monai.apps.utils
    from monai.bundle import verify_metadata

    def no_network(*args, **kwargs):
        raise AssertionError("verify_metadata tried to download the schema")

    monkeypatch.setattr(monai.apps.utils, "urlretrieve", no_network)
    monkeypatch.setattr(monai.apps.utils, "urlopen", no_network)
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(SCHEMA))
