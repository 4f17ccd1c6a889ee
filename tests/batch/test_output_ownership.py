"""Never overwrite what the program did not write; never read its own outputs as inputs.

Reproduced on main: ``score --out`` on a folder holding a user's own ``slices.csv`` replaced it,
and a batch whose ``--out`` lay inside its input tree read its previous outputs back (SEG objects,
PNG, CSV and JSON files) as inputs on the next run.
"""

from __future__ import annotations

import csv
import json

from typer.testing import CliRunner

from adaptclip_med.cli.main import app as main_app
from adaptclip_med.utils.ownership import OWNER_MARKER
from tests.support.dicom_studies import good_study, tiny_cli_args
from test_cli import app


def _score(study, out):
    return CliRunner().invoke(main_app, ["score", str(study), "--out", str(out), *tiny_cli_args()])


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.exit_code == 2 and len(lines) == 1, result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr
    return lines[0]


def test_score_refuses_a_folder_of_the_users_own_files(tmp_path):
    study = good_study(tmp_path / "src", "a", seed=1)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "slices.csv").write_text("my own spreadsheet\n")
    line = _one_error_line(_score(study.folder, mine))
    assert "did not write" in line and "give a new or empty folder" in line
    assert (mine / "slices.csv").read_text() == "my own spreadsheet\n" and sorted(p.name for p in mine.iterdir()) == ["slices.csv"]


def test_score_writes_into_a_new_or_empty_folder_marks_it_and_rewrites_it_later(tmp_path):
    study = good_study(tmp_path / "src", "a", seed=1)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _score(study.folder, empty).exit_code == 0
    assert (empty / OWNER_MARKER).is_file() and (empty / "study.json").is_file()
    (empty / "my_notes.txt").write_text("kept")  # the user's note in an owned folder is carried over
    assert _score(study.folder, empty).exit_code == 0
    assert (empty / "my_notes.txt").read_text() == "kept" and (empty / OWNER_MARKER).is_file()


def test_a_result_folder_of_an_earlier_version_is_adopted(tmp_path):
    study = good_study(tmp_path / "src", "a", seed=1)
    old = tmp_path / "old"
    assert _score(study.folder, old).exit_code == 0
    (old / OWNER_MARKER).unlink()  # written before the marker existed: study.json names the software
    assert json.loads((old / "study.json").read_text())["software"]["name"] == "adaptclip-med"
    assert _score(study.folder, old).exit_code == 0 and (old / OWNER_MARKER).is_file()


def test_batch_refuses_a_folder_holding_the_users_worklist(tmp_path):
    good_study(tmp_path / "src", "a", seed=1)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "worklist.csv").write_text("patient list\n")
    result = CliRunner().invoke(app(), ["batch", str(tmp_path / "src"), "--out", str(mine), *tiny_cli_args()])
    assert "did not write" in _one_error_line(result)
    assert (mine / "worklist.csv").read_text() == "patient list\n"


def _errors(out) -> list[str]:
    with open(out / "errors.csv", newline="") as handle:
        return [row["reason"] for row in csv.DictReader(handle)]


def test_batch_output_inside_the_input_tree_is_not_read_back(tmp_path):
    src = tmp_path / "src"
    study = good_study(src, "a", seed=1)
    for out in (src / "results", src / "a" / "nested-results"):  # beside the study, and inside its folder
        args = ["batch", str(src), "--out", str(out), *tiny_cli_args()]
        first = CliRunner().invoke(app(), args)
        assert first.exit_code == 0, first.output + first.stderr
        assert (out / study.key / "anomaly_seg.dcm").is_file()
        second = CliRunner().invoke(app(), args)
        assert second.exit_code == 0, second.output + second.stderr
        assert "1 studies: 0 scored, 1 already done, 0 failed in" in second.stdout, second.stdout
        assert _errors(out) == []


def test_a_marker_written_by_another_rank_while_checking_counts_as_owned(tmp_path, monkeypatch):
    """Two torchrun ranks claim one --out: rank 1 looked for the marker, rank 0 wrote it (and a
    first output), then rank 1 listed the folder and refused it (seen once in a 2-rank CI run)."""
    from adaptclip_med.utils import ownership

    folder = tmp_path / "out"
    folder.mkdir()
    real_has_marker = ownership.has_marker
    looks = []

    def racing_has_marker(path):
        if not looks:  # the other rank marks the folder right after our first look
            (folder / ownership.OWNER_MARKER).write_text("x")
            (folder / "worklist.csv").write_text("study_key\n")
        looks.append(path)
        return real_has_marker(path) if len(looks) > 1 else False

    monkeypatch.setattr(ownership, "has_marker", racing_has_marker)
    assert ownership.is_owned(folder)
    assert ownership.require_owned(folder) == folder
