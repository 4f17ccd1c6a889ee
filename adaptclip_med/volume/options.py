"""How studies are scored, split by concern: which model (:class:`ModelOptions`), which normal
references (:class:`ReferenceOptions`), how slices are made (:class:`SlicingOptions`) and what is
written (:class:`OutputOptions`), held together by :class:`ScoringOptions`, the one record the CLI,
bundle, batch and dashboard share.

Each part is consumed by the code that owns its concern (the model factory reads only the method
part, the slice maker only the slicing part, the writers only the output part), so a new setting has
one obvious home.  Every field is a plain JSON value: the dashboard hands its options to the
Streamlit process as JSON and the bundle's config names them.  The flat names (``bank``,
``window``, ``threshold`` ...) stay the vocabulary of the command line and of configuration files;
:meth:`ScoringOptions.build` and :meth:`ScoringOptions.with_` route each to its part.

Kept free of heavy imports (torch, open_clip load lazily) so the command line and the dashboard
configuration can use it without paying for the model stack."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.model.backbone_source import BackboneSpec
    from adaptclip_med.slice_preprocessing import SlicePreprocessing

#: Study score from slice scores (see volume/scoring.py).
DEFAULT_AGGREGATE = "max"


@dataclass(frozen=True)
class ModelOptions:
    """The method spec: which model scores, the method and everything that builds it (-> :class:`MethodSpec`).
    ``None`` fields take the method's own defaults (backbone, image size, class name)."""

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
    runtime: str | None = None  # vision-tower runtime (adaptclip_med/runtime/); None = torch

    def backbone_spec(self) -> "BackboneSpec":
        from adaptclip_med.model.backbone_source import BackboneSpec

        return BackboneSpec(self.backbone or "", self.backbone_weights, self.activation, self.cache_dir, self.offline)

    def method_spec(self) -> "MethodSpec":
        from adaptclip_med.methods.base import MethodSpec

        return MethodSpec(method=self.method, backbone=self.backbone_spec(), weights=self.adapters,
                          image_size=self.image_size, device=self.device, precision=self.precision,
                          class_name=self.class_name, runtime=self.runtime)


@dataclass(frozen=True)
class ReferenceOptions:
    """Which normal references the study is compared with: a bank folder (None or ``zero_shot`` =
    text-only), how many of its scans (``shots``), how a study slice finds its reference slices
    (``match``: position or retrieval), how many matched slices per scan, and whether a study of
    another modality than the bank's may be scored anyway (``allow_other_modality``)."""

    bank: str | None = None
    shots: int | None = None
    zero_shot: bool = False
    match: str | None = None
    slices_per_scan: int | None = None
    #: score a study whose modality differs from the bank's (refused otherwise; volume/comparability.py)
    allow_other_modality: bool = False

    @property
    def uses_bank(self) -> bool:
        return bool(self.bank) and not self.zero_shot


@dataclass(frozen=True)
class SlicingOptions:
    """How a volume becomes model inputs: the intensity window (None = the bank's, else percentile
    scaling), the slice axis, the slices per forward pass and which slices are scored (``triage``:
    every N-th body slice first, then refinement, volume/triage.py; None = every body slice)."""

    window: str | None = None
    axis: str = "axial"
    batch_size: int | str = 4  # or "auto" (volume/batch_size.py)
    triage: int | None = None

    def preprocessing(self) -> "SlicePreprocessing":
        from adaptclip_med.slice_preprocessing import SlicePreprocessing, parse_window

        return SlicePreprocessing(window=parse_window(self.window), axis=self.axis)


@dataclass(frozen=True)
class OutputOptions:
    """What is decided and written: the mask threshold (None = the bank's calibrated value, else
    0.5), the study score's aggregation, the optional DICOM Parametric Map and the optional Key
    Object Selection of the top slices (the AI node switches it on)."""

    threshold: float | None = None
    aggregate: str = DEFAULT_AGGREGATE
    parametric_map: bool = False
    key_objects: bool = False


_PARTS: dict[str, type] = {"model": ModelOptions, "references": ReferenceOptions, "slicing": SlicingOptions,
                           "output": OutputOptions}
#: flat option name -> the part that owns it (flat names are unique across the parts).
_OWNER: dict[str, str] = {f.name: part for part, cls in _PARTS.items() for f in fields(cls)}


@dataclass(frozen=True)
class ScoringOptions:
    """Everything that defines how studies are scored, one part per concern."""

    model: ModelOptions = field(default_factory=ModelOptions)
    references: ReferenceOptions = field(default_factory=ReferenceOptions)
    slicing: SlicingOptions = field(default_factory=SlicingOptions)
    output: OutputOptions = field(default_factory=OutputOptions)

    @classmethod
    def build(cls, **settings: Any) -> "ScoringOptions":
        """Options from flat names (``backbone=..., bank=..., window=..., threshold=...``), each
        routed to its part; an unknown name is refused."""
        return cls().with_(**settings)

    def with_(self, **settings: Any) -> "ScoringOptions":
        """A copy with the named flat settings changed in whichever part owns each."""
        unknown = sorted(set(settings) - set(_OWNER))
        if unknown:
            raise TypeError(f"unknown scoring option(s): {', '.join(unknown)} (known: {', '.join(sorted(_OWNER))})")
        changes: dict[str, dict[str, Any]] = {}
        for name, value in settings.items():
            changes.setdefault(_OWNER[name], {})[name] = value
        return replace(self, **{part: replace(getattr(self, part), **values) for part, values in changes.items()})

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{"model": {...}, "references": {...}, "slicing": {...}, "output": {...}}``."""
        return {part: asdict(getattr(self, part)) for part in _PARTS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ScoringOptions":
        """The inverse of :meth:`to_dict`; also reads the earlier flat record (dashboard configs
        written before the split).  Names no part knows are ignored (a config from a newer
        version still opens)."""
        flat: dict[str, Any] = {}
        for key, value in data.items():
            if key in _PARTS and isinstance(value, Mapping):
                flat.update(value)
            else:
                flat[key] = value
        return cls.build(**{k: v for k, v in flat.items() if k in _OWNER})

    # The parts' derived specs, for callers that hold the whole record.
    def method_spec(self) -> "MethodSpec":
        return self.model.method_spec()

    def preprocessing(self) -> "SlicePreprocessing":
        return self.slicing.preprocessing()
