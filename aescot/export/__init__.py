"""Export for training: Parquet for SFT, RL and preference pairs, grouped splits, a dataset card.

>>> from aescot.export import ExportConfig, export_dataset
>>> summary = export_dataset(store, ExportConfig(out="export/"))
"""

from aescot.export.features import FORMATS, features
from aescot.export.run import (
    AsOfError,
    ExportConfig,
    ExportSummary,
    check_export,
    export_as_of,
    export_dataset,
)
from aescot.export.splits import LeakReport, SplitPlan, assign_splits, check_leaks, group_sources

__all__ = [
    "FORMATS",
    "AsOfError",
    "ExportConfig",
    "ExportSummary",
    "LeakReport",
    "SplitPlan",
    "assign_splits",
    "check_export",
    "check_leaks",
    "export_as_of",
    "export_dataset",
    "features",
    "group_sources",
]
