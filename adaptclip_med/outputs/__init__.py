"""Writing results in the input's geometry (NIfTI, DICOM SEG / parametric map) and reports."""
