"""AdaCLIP's published releases, as facts (file names, what each was trained on).  Plain data, so the
weights catalog and the release importer both read it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AdaClipRelease:
    file_name: str
    trained_on: str
    note: str


#: AdaCLIP's three releases (file names from the authors' README / app.py).  Their README's table labels
#: the two dataset-specific files "MVTec AD & ClinicDB" / "VisA & ColonDB", while the file names and
#: train/test scripts pair MVTec with ColonDB and VisA with ClinicDB (Q19); the file names are used.
ADACLIP_RELEASES: tuple[AdaClipRelease, ...] = (
    AdaClipRelease("pretrained_mvtec_colondb.pth", "MVTec AD + ColonDB", "validated on VisA"),
    AdaClipRelease("pretrained_visa_clinicdb.pth", "VisA + ClinicDB", "validated on MVTec AD"),
    AdaClipRelease("pretrained_all.pth", "all 14 datasets of the paper", "demo model"),
)
