"""A saved view of the runs page that puts the headline numbers where the eye lands.

The MLflow UI (3.x) saves a view of an experiment's runs page (columns, their widths, sorting,
charts) when a user presses "Share", as the experiment tag ``mlflow.sharedViewState.<key>``
(plain or compressed JSON), and opens it from the link ``...runs?viewStateShareKey=<key>``;
nothing sets a default view. crossmath writes one such view, ``crossmath``, into every
experiment it logs to: the runs table with the dataset, the source and the headline metric
columns (``summary.headline``) right after a run name column wide enough for names of 40
characters and more, newest runs first. Its charts are left to the UI, which draws one section per metric
prefix and puts ``acc/`` (the headline) first.

``workflowType=machine_learning`` in the link opens the "Model training" side of the UI (the
runs table) whatever the browser last showed: MLflow 3.17 picks the experiment page's side
from that switch, not from the experiment's kind tag.
"""

from __future__ import annotations

import json
from typing import Sequence

from crossmath.summary.headline import CROSSMATH_HEADLINE

VIEW_KEY = "crossmath"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
RUN_NAME_COLUMN = "attributes.`Run Name`"
DATASET_COLUMN = "attributes.`Dataset`"
SOURCE_COLUMN = "attributes.`Source`"
OTHER_COLUMNS = ("runDateAndNestInfo", "duration")  # Created, Duration
RUN_NAME_WIDTH = 380  # pixels: a name of 40 characters and its short id
METRIC_WIDTH = 110


def headline_view(metrics: Sequence[str] = CROSSMATH_HEADLINE) -> dict:
    """The saved view's state, in the UI's own keys: the headline metrics right after the
    run name (the UI applies widths only to the columns it is given an order for)."""
    metric_columns = [f"metrics.`{name}`" for name in metrics]
    return {
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
        "selectedColumns": [DATASET_COLUMN, SOURCE_COLUMN, *metric_columns],
        "columnOrder": [RUN_NAME_COLUMN, *metric_columns, DATASET_COLUMN, *OTHER_COLUMNS,
                        SOURCE_COLUMN],
        "columnWidths": {RUN_NAME_COLUMN: RUN_NAME_WIDTH,
                         **{column: METRIC_WIDTH for column in metric_columns}},
    }


def view_tag_value(metrics: Sequence[str] = CROSSMATH_HEADLINE) -> str:
    return json.dumps(headline_view(metrics), separators=(",", ":"))


def runs_page_url(server: str, experiment_id: str, *, saved_view: bool = True) -> str:
    """The runs page of an experiment on the MLflow server at ``server``, on the saved view."""
    query = "workflowType=machine_learning"
    if saved_view:
        query = f"viewStateShareKey={VIEW_KEY}&{query}"
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"
