"""Batch scoring of DICOM studies from folder trees or a DICOMweb PACS into a ranked worklist;
resumable after any crash and sharded over ranks under torchrun (``adaptclip-med batch``)."""

from adaptclip_med.batch.dicomweb import DicomwebSource, PacsError, RetryPolicy
from adaptclip_med.batch.discovery import FolderSource
from adaptclip_med.batch.rules import SeriesRules, load_rules
from adaptclip_med.batch.runner import BatchSummary, run_batch
from adaptclip_med.batch.worker import BatchOptions, DiskFullError

__all__ = ["BatchOptions", "BatchSummary", "DicomwebSource", "DiskFullError", "FolderSource", "PacsError", "RetryPolicy",
           "SeriesRules", "load_rules", "run_batch"]
