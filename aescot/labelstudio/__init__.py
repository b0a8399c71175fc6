"""Label Studio: the annotators' tool and the system of record for human labels.

Stage functions (each takes the dataset store and a :class:`LabelStudioConfig`):

* :func:`ensure_project` - create/update the screening project, its instructions and image storage;
* :func:`push_items` - items -> tasks in bulk, idempotent by item id, gold mixed in unmarked;
* :func:`collect_annotations` - incremental pull, raw snapshot, ``annotations`` + consensus ``labels``;
* :func:`agreement_report`, :func:`gold_report` - Krippendorff's alpha per field, per-annotator stats,
  gold accuracy.

:mod:`aescot.labelstudio.server` starts the embedded local server.
"""

from aescot.labelstudio.agreement import AgreementReport, GoldReport, agreement_report, gold_report
from aescot.labelstudio.client import LabelStudioConfigError, LabelStudioUnavailable
from aescot.labelstudio.collect import CollectReport, collect_annotations
from aescot.labelstudio.config import LabelStudioConfig
from aescot.labelstudio.project import Project, ensure_project
from aescot.labelstudio.push import Prediction, PushReport, push_items

__all__ = [
    "AgreementReport",
    "CollectReport",
    "GoldReport",
    "LabelStudioConfig",
    "LabelStudioConfigError",
    "LabelStudioUnavailable",
    "Prediction",
    "Project",
    "PushReport",
    "agreement_report",
    "collect_annotations",
    "ensure_project",
    "gold_report",
    "push_items",
]
