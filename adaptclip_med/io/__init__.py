"""Reading studies (DICOM, NIfTI, 2-D images) into canonical :class:`Volume` objects."""
