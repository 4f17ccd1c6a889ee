"""How studies are scored, as one flat, JSON-friendly record shared by the CLI, bundle, batch and
dashboard.  Kept free of heavy imports (torch, open_clip load lazily) so the command line and the
dashboard configuration can use it without paying for the model stack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.model.backbone_source import BackboneSpec
    from adaptclip_med.volume.preprocessing import SlicePreprocessing

#: Study score from slice scores (see volume/scoring.py).
DEFAULT_AGGREGATE = "max"


@dataclass(frozen=True)
class ScoringOptions:
    """Everything that defines how studies are scored (CLI, bundle, batch and dashboard share it),
    as a flat, JSON-friendly record; grouped by concern through :meth:`method_spec` (which model),
    :meth:`preprocessing` (how slices are made) and the bank/output fields below."""

    # which model (-> MethodSpec)
    method: str = "adaptclip"
    class_name: str | None = None
    backbone: str | None = None
    backbone_weights: str | None = None
    activation: str = "auto"
    adapters: str | None = None
    image_size: int | None = None
    device: str = "cpu"
    offline: bool = False
    cache_dir: str | None = None
    precision: str = "fp32"
    runtime: str | None = None
    # which references
    bank: str | None = None
    shots: int | None = None
    zero_shot: bool = False
    match: str | None = None
    slices_per_scan: int | None = None
    # how slices are made
    window: str | None = None
    axis: str = "axial"
    batch_size: int = 4
    # what is written
    threshold: float | None = None
    aggregate: str = DEFAULT_AGGREGATE
    parametric_map: bool = False

    def backbone_spec(self) -> "BackboneSpec":
        from adaptclip_med.model.backbone_source import BackboneSpec

        return BackboneSpec(self.backbone or "", self.backbone_weights, self.activation, self.cache_dir, self.offline)

    def method_spec(self) -> "MethodSpec":
        from adaptclip_med.methods.base import MethodSpec

        return MethodSpec(method=self.method, backbone=self.backbone_spec(), weights=self.adapters,
                          image_size=self.image_size, device=self.device, precision=self.precision,
                          class_name=self.class_name, runtime=self.runtime)

    def preprocessing(self) -> "SlicePreprocessing":
        from adaptclip_med.volume.preprocessing import SlicePreprocessing, parse_window

        return SlicePreprocessing(window=parse_window(self.window), axis=self.axis)
