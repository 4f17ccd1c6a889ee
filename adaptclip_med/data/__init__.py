"""Dataset layouts read into one sample record, few-shot reference choice, and a torch dataset.

Readers (one module per layout) -> :class:`DatasetIndex` via :func:`read_dataset`;
:func:`choose_references` / :func:`sample_references` pick few-shot normals;
:class:`adaptclip_med.data.torch_dataset.AnomalyImageDataset` turns samples into tensors.
"""
