"""Use a trained artifact: load it, turn request instances into the frame the pipeline takes, predict.

For the serving side (a BentoML service answering {"instances": [{col: value, ...}]}): the
artifact's metadata lists each feature with its `input_dtype`; casting to those is all the
preparation the pipeline needs (booleans arrive as 0.0/1.0, text as strings, null as missing).
"""

from __future__ import annotations

import io
import json
import os

import joblib
import numpy as np
import pandas as pd

from control_plane.errors import InvalidArgument
from control_plane.ml.train import METADATA_FILE, MODEL_FILE


class PredictionError(InvalidArgument, ValueError):
    """Instances the model cannot take; `violations` name the instance and column."""


def load(directory: str):
    """(fitted Pipeline, metadata dict) from a directory written by TrainResult.save()."""
    with open(os.path.join(directory, METADATA_FILE)) as f:
        metadata = json.load(f)
    return joblib.load(os.path.join(directory, MODEL_FILE)), metadata


def load_bytes(files: dict[str, bytes]):
    """The same from TrainResult.files (or an artifact store's blobs)."""
    return joblib.load(io.BytesIO(files[MODEL_FILE])), json.loads(files[METADATA_FILE])


def instances_frame(instances: list[dict], metadata: dict) -> pd.DataFrame:
    """A DataFrame of the feature columns, cast to the recorded input dtypes. Extra keys are
    ignored (a client may send the target or an id); a missing key or an uncastable value is an error."""
    if not isinstance(instances, list) or not instances:
        raise PredictionError([("instances", "give a non-empty list of objects")])
    features = metadata["features"]
    problems = []
    for i, row in enumerate(instances):
        if not isinstance(row, dict):
            problems.append((f"instances[{i}]", "give an object of column -> value"))
            continue
        for f in features:
            if f["name"] not in row:
                problems.append((f"instances[{i}].{f['name']}", f"missing; the model takes {', '.join(x['name'] for x in features)}"))
    if problems:
        raise PredictionError(problems[:20])
    frame = pd.DataFrame({f["name"]: pd.Series([row[f["name"]] for row in instances], dtype=object) for f in features})
    out = {}
    for f in features:
        col = frame[f["name"]]
        try:
            out[f["name"]] = col.astype(f["input_dtype"])
        except (TypeError, ValueError):
            bad = next(i for i, v in enumerate(col) if not _castable(v, f["input_dtype"]))
            raise PredictionError([(f"instances[{bad}].{f['name']}",
                                    f"{col[bad]!r} is not a valid {f['type']} value")]) from None
    return pd.DataFrame(out)


def _castable(value, dtype: str) -> bool:
    try:
        pd.Series([value], dtype=object).astype(dtype)
        return True
    except (TypeError, ValueError):
        return False


def predict(model, metadata: dict, instances: list[dict]) -> list:
    """JSON-native predictions: class labels, numbers, or cluster ids."""
    values = model.predict(instances_frame(instances, metadata))
    return [v.item() if isinstance(v, np.generic) else v for v in values]
