"""Importable pieces the MONAI bundle configs (``bundles/adaptclip_med/configs``) refer to.

The bundle ships no Python of its own: its configs name these objects, which wrap the project's
readers, scorer, writers, trainer and metrics in the shapes MONAI engines expect.
"""

from adaptclip_med.bundle_support.datalist import discover_studies, read_datalist, select_datalist
from adaptclip_med.bundle_support.demo import DemoStudies
from adaptclip_med.utils.distributed import (
    StudyShardSampler,
    init_distributed,
    process_device,
    rank_zero_first,
    shutdown_distributed,
)
from adaptclip_med.bundle_support.inference import (
    StudyInferer,
    collate_studies,
    opaque,
    prepare_study_batch,
    study_items,
    study_window,
)
from adaptclip_med.bundle_support.outputs import (
    OUTPUT_TRANSFORMS,
    SaveDicomSegd,
    SaveDicomSrd,
    SaveKeyObjectsd,
    SaveMaskNiftid,
    SaveOverlaysd,
    SaveParametricMapd,
    SaveProbabilityNiftid,
    SaveScorePlotd,
    SaveSlicesCsvd,
    SaveStudyJsond,
    WriteStudyOutputsd,
)
from adaptclip_med.bundle_support.metrics import AnomalyMetrics, MetricsReport
from adaptclip_med.bundle_support.network import AdaptCLIPMapNetwork, AnomalyMapNetwork
from adaptclip_med.bundle_support.summary import summarise_outputs, write_summary
from adaptclip_med.bundle_support.training import AdapterTrainingRun

__all__ = [
    "AdaptCLIPMapNetwork", "AnomalyMapNetwork", "AdapterTrainingRun", "AnomalyMetrics", "DemoStudies", "MetricsReport",
    "OUTPUT_TRANSFORMS", "SaveDicomSegd", "SaveDicomSrd", "SaveKeyObjectsd", "SaveMaskNiftid", "SaveOverlaysd", "SaveParametricMapd", "SaveProbabilityNiftid",
    "SaveScorePlotd", "SaveSlicesCsvd", "SaveStudyJsond", "StudyInferer", "StudyShardSampler", "WriteStudyOutputsd",
    "collate_studies", "opaque", "study_items",
    "discover_studies", "init_distributed", "prepare_study_batch", "process_device", "rank_zero_first",
    "read_datalist", "select_datalist", "shutdown_distributed", "study_window", "summarise_outputs",
    "write_summary",
]
