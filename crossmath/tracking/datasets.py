"""What a run read, as an MLflow dataset input: the runs table's Dataset column and filters.

Only metadata is logged (``MetaDataset``): the set's name, its digest (our fingerprint of its
content) and where it comes from, never its rows. A source is one of

- ``local``: a path or URI (``/data/CrossMath``, ``s3://bucket/set``), resolved by MLflow's
  own dataset sources;
- ``hugging_face``: a Hugging Face Hub dataset id (``xuyige/CrossMath``);
- ``code``: the command that makes the data (generated puzzles are made on the fly).

The input's context says how the run used the set: ``evaluation`` or ``training``.
"""

from __future__ import annotations

import warnings

from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import DatasetInput, InputTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
from mlflow.utils.validation import MAX_DATASET_DIGEST_SIZE

from crossmath.core.dataset_ref import DatasetRef

FINGERPRINT_INPUT_TAG = "fingerprint"  # the whole fingerprint, when the digest had to be cut


def mlflow_source(ref: DatasetRef) -> DatasetSource:
    if ref.source_type == "hugging_face":
        return HuggingFaceDatasetSource(path=ref.source)
    if ref.source_type == "code":
        return CodeDatasetSource(tags={"command": ref.source})
    with warnings.catch_warnings():  # a local path matches the "" and "file" schemes alike
        warnings.simplefilter("ignore", UserWarning)
        return resolve_dataset_source(ref.source)


def log_dataset(tracking_uri: str, run_id: str, ref: DatasetRef, context: str) -> None:
    """``ref`` as an input of the run, used as ``context`` (``evaluation``, ``training``).

    MLflow keeps digests of at most 36 characters: a longer fingerprint is cut there, and
    kept whole in the input tag ``fingerprint``. Logging the same set again is a no-op.
    """
    digest = ref.fingerprint[:MAX_DATASET_DIGEST_SIZE]
    dataset = MetaDataset(mlflow_source(ref), name=ref.name, digest=digest)
    tags = [InputTag(MLFLOW_DATASET_CONTEXT, context)]
    if digest != ref.fingerprint:
        tags.append(InputTag(FINGERPRINT_INPUT_TAG, ref.fingerprint))
    MlflowClient(tracking_uri).log_inputs(
        run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=tags)])
