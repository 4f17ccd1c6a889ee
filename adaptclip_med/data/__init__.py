"""Dataset layouts read into one sample record, few-shot reference choice, and a torch dataset.

Readers (one module per layout) -> :class:`DatasetIndex` via :func:`read_dataset`;
:func:`choose_references` / :func:`sample_references` pick few-shot normals;
:class:`adaptclip_med.data.torch_dataset.AnomalyImageDataset` turns samples into tensors.
"""

from adaptclip_med.data.layouts import LAYOUTS, Layout, detect_layout, read_dataset, register_layout
from adaptclip_med.data.references import ReferenceChoice, choose_references, sample_references
from adaptclip_med.data.samples import AnomalySample, DatasetIndex

__all__ = [
    "LAYOUTS",
    "AnomalySample",
    "DatasetIndex",
    "Layout",
    "ReferenceChoice",
    "choose_references",
    "detect_layout",
    "read_dataset",
    "register_layout",
    "sample_references",
]
