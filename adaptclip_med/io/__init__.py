"""Reading studies (DICOM, NIfTI, 2-D images) into canonical :class:`Volume` objects."""

from adaptclip_med.io.dicom import load_dicom_series
from adaptclip_med.io.dicom_scan import SeriesInfo, SkippedFile, all_skipped, scan_dicom
from adaptclip_med.io.image2d import load_image2d
from adaptclip_med.io.loader import default_series, load_study
from adaptclip_med.io.nifti import load_nifti
from adaptclip_med.io.volume import SliceSource, Volume

__all__ = ["SeriesInfo", "SkippedFile", "SliceSource", "Volume", "all_skipped", "default_series", "load_dicom_series",
           "load_image2d", "load_nifti", "load_study", "scan_dicom"]
