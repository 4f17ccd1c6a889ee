"""How studies are scored, split by concern: which model (a
:class:`~adaptclip_med.methods.base.MethodSpec`, the one record of the model choice), which normal
references (:class:`ReferenceOptions`), how slices are made (:class:`SlicingOptions`) and what is
written (:class:`OutputOptions`), held together by :class:`ScoringOptions`, the one record the CLI,
bundle, batch and dashboard share.

Each part is consumed by the code that owns its concern (the model factory reads only the method
spec, the slice maker only the slicing part, the writers only the output part), so a new setting has
one obvious home.  Callers build the parts they set (``ScoringOptions(model=spec,
references=ReferenceOptions(bank=...))``, ``options.with_references(bank=...)``): no code routes
flat names.  Every field is a plain JSON value (:meth:`ScoringOptions.to_dict`): the dashboard hands
its options to the Streamlit process as JSON.  The flat names (``adapters``, ``bank``, ``window``,
``threshold`` ...) remain the vocabulary of two file formats only, the node's ``[scoring]`` table
and dashboard configurations written before the split; :func:`scoring_from_flat` reads them.

Kept free of heavy imports: the method spec's module (torch) and the backbone spec's (open_clip)
load only when a record is built or read, so the command line's ``--help`` does not pay for them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.slice_preprocessing import SlicePreprocessing

#: Study score from slice scores (see volume/scoring.py).
DEFAULT_AGGREGATE = "max"


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


def _default_spec() -> "MethodSpec":
    from adaptclip_med.methods.base import MethodSpec

    return MethodSpec()


#: The parts other than the model, by field name of :class:`ScoringOptions`.
_SETTING_PARTS: dict[str, type] = {"references": ReferenceOptions, "slicing": SlicingOptions, "output": OutputOptions}
_PARTS = ("model", *_SETTING_PARTS)
#: The backbone's names in the flat vocabulary (= the command line's flags) -> BackboneSpec fields;
#: every other field of the method spec keeps its own name there, except ``weights``: ``adapters``.
_FLAT_BACKBONE = {"backbone": "architecture", "backbone_weights": "weights", "activation": "activation",
                  "cache_dir": "cache_dir", "offline": "offline"}
_FLAT_WEIGHTS = "adapters"
#: What only the flat model record had (a dashboard configuration written before the spec record).
_FLAT_MODEL_ONLY = frozenset({_FLAT_WEIGHTS, *_FLAT_BACKBONE}) - {"backbone"}


def model_settings() -> tuple[str, ...]:
    """The model's names in the flat vocabulary: the method spec's fields, with the backbone's and
    the weights' spelled as the command line spells them (a new spec field is known at once)."""
    from adaptclip_med.methods.base import MethodSpec

    own = [f.name for f in fields(MethodSpec) if f.name not in ("backbone", "weights")]
    return (*own, _FLAT_WEIGHTS, *_FLAT_BACKBONE)


@dataclass(frozen=True)
class ScoringOptions:
    """Everything that defines how studies are scored, one part per concern; ``model`` is the
    method spec the model factory loads."""

    model: "MethodSpec" = field(default_factory=_default_spec)
    references: ReferenceOptions = field(default_factory=ReferenceOptions)
    slicing: SlicingOptions = field(default_factory=SlicingOptions)
    output: OutputOptions = field(default_factory=OutputOptions)

    # One copy-with-changes per part: the caller names the part it changes.
    def with_model(self, **changes: Any) -> "ScoringOptions":
        return replace(self, model=replace(self.model, **changes))

    def with_references(self, **changes: Any) -> "ScoringOptions":
        return replace(self, references=replace(self.references, **changes))

    def with_slicing(self, **changes: Any) -> "ScoringOptions":
        return replace(self, slicing=replace(self.slicing, **changes))

    def with_output(self, **changes: Any) -> "ScoringOptions":
        return replace(self, output=replace(self.output, **changes))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{"model": {method spec}, "references": {...}, "slicing": {...}, "output": {...}}``."""
        return {"model": self.model.to_dict(), **{part: asdict(getattr(self, part)) for part in _SETTING_PARTS}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ScoringOptions":
        """The inverse of :meth:`to_dict`; also reads the two earlier records of dashboard
        configurations: the parts with a flat model part (``adapters``, ``backbone_weights`` ...),
        and the flat record written before the split.  Names no part knows are ignored (a
        configuration from a newer version still opens)."""
        flat: dict[str, Any] = {}
        spec = None
        for key, value in data.items():
            if key == "model" and isinstance(value, Mapping) and _is_spec_record(value):
                from adaptclip_med.methods.base import MethodSpec

                spec = MethodSpec.from_dict(value)
            elif key in _PARTS and isinstance(value, Mapping):
                flat.update(value)
            else:
                flat[key] = value
        options = scoring_from_flat(flat, strict=False)
        return replace(options, model=spec) if spec is not None else options

    def preprocessing(self) -> "SlicePreprocessing":
        return self.slicing.preprocessing()


def _is_spec_record(model: Mapping[str, Any]) -> bool:
    """A model part written as a method spec (``weights``, nested ``backbone``), not as the
    earlier flat model record."""
    return not (_FLAT_MODEL_ONLY & set(model)) and not isinstance(model.get("backbone"), str)


def method_spec_from_flat(values: Mapping[str, Any]) -> "MethodSpec":
    """The method spec of the flat model names (absent names: the spec's defaults; the backbone
    always given, its architecture empty for the method's default, as the command line builds it)."""
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.model.backbone_source import BackboneSpec

    backbone = {field_name: values[name] for name, field_name in _FLAT_BACKBONE.items() if name in values}
    backbone["architecture"] = backbone.get("architecture") or ""
    backbone.setdefault("weights", None)
    own = {name: values[name] for name in model_settings() if name in values and name not in _FLAT_BACKBONE
           and name != _FLAT_WEIGHTS}
    return MethodSpec(backbone=BackboneSpec(**backbone), weights=values.get(_FLAT_WEIGHTS), **own)


def scoring_from_flat(settings: Mapping[str, Any], strict: bool = True) -> ScoringOptions:
    """Options from the flat vocabulary of the file formats that use it (the node's ``[scoring]``
    table, earlier dashboard configurations).  ``strict``: an unknown name is refused (TypeError
    naming it); otherwise it is ignored."""
    model = model_settings()
    known = {*model, *(f.name for part in _SETTING_PARTS.values() for f in fields(part))}
    unknown = sorted(set(settings) - known)
    if unknown and strict:
        raise TypeError(f"unknown scoring option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    parts = {name: part(**{f.name: settings[f.name] for f in fields(part) if f.name in settings})
             for name, part in _SETTING_PARTS.items()}
    return ScoringOptions(model=method_spec_from_flat({k: v for k, v in settings.items() if k in model}),
                          **parts)
