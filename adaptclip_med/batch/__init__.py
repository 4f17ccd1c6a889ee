"""Batch scoring of DICOM studies from folder trees or a DICOMweb PACS into a ranked worklist;
resumable after any crash and sharded over ranks under torchrun (``adaptclip-med batch``)."""
