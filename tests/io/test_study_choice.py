"""A folder holding several studies (or equally ranked series) is refused, never scored as one of them."""

from __future__ import annotations

import pydicom
import pytest
from io_helpers import assert_safe_message, identifiers_of

from adaptclip_med.errors import InputError
from adaptclip_med.io.loader import load_study


def test_several_studies_are_refused_with_a_pseudonymous_list_and_chosen_by_index(write_series, phantom):
    folder = write_series("mixed", series_number=2, file_prefix="a")
    write_series("mixed", hu=phantom[0][:5], series_number=7, file_prefix="b", patient_id="OTHER-0002")
    with pytest.raises(InputError) as caught:
        load_study(folder)
    message = str(caught.value)
    assert_safe_message(message, identifiers_of(folder))
    assert "2 studies" in message and "--study N" in message and "#7 CT 5 slice(s)" in message
    counts = set()
    for index in (0, 1):
        volume, _ = load_study(folder, study=index)
        counts.add(volume.array.shape[0])
    assert counts == {5, 8}
    with pytest.raises(InputError, match="out of range"):
        load_study(folder, study=2)


def test_equally_ranked_series_are_refused_and_chosen_with_series_index(write_series):
    study_uid = pydicom.uid.generate_uid()
    folder = write_series("ties", study_uid=study_uid, series_number=1, file_prefix="a")
    write_series("ties", study_uid=study_uid, series_number=1, file_prefix="b")
    with pytest.raises(InputError, match="rank equally.*--series N"):
        load_study(folder)
    volume, _ = load_study(folder, series_rule=1)
    assert volume.array.shape[0] == 8
