"""Turning array-likes (NumPy arrays, lists, pandas Series) into what the C++ core reads."""
from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from . import _flipless
from ._errors import InputError

_COUNTED_IN_PLACE = (np.dtype(np.int32), np.dtype(np.int64))


def as_labels(values: Any, name: str) -> np.ndarray:
    """A 1-D, C-contiguous int32 or int64 label array.

    int32 and int64 C-contiguous arrays come back as they are (no copy). Other integer types,
    bools and whole-number floats are converted (a copy); 2-D scores (probabilities or logits,
    shape (n, k)) become their row argmax, the lowest index on ties.
    """
    a = np.asarray(values)
    if a.ndim == 2:
        return labels_from_scores(a, name)
    if a.ndim != 1:
        raise InputError(f"{name}: expected labels (n,) or scores (n, k), got an array of shape {a.shape}")
    if a.dtype in _COUNTED_IN_PLACE and a.flags.c_contiguous:
        return a
    kind = a.dtype.kind
    if kind in "iu":
        if kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
            raise InputError(f"{name}: label {a.max()} does not fit a 64-bit integer")
        return np.ascontiguousarray(a, dtype=np.int64)
    if kind == "b":
        return np.ascontiguousarray(a, dtype=np.int32)
    if kind == "f":
        finite = np.isfinite(a)
        if not finite.all():
            row = int(np.argmin(finite))
            raise InputError(f"{name}:{row + 1}: field 'label': {a[row]} is not a label")
        whole = a == np.round(a)
        if not whole.all():
            row = int(np.argmin(whole))
            raise InputError(
                f"{name}:{row + 1}: field 'label': {a[row]} is not a whole number; give integer labels, "
                "or scores of shape (n, k)"
            )
        return np.ascontiguousarray(a, dtype=np.int64)
    raise InputError(f"{name}: labels must be integers (class indices), got dtype {a.dtype}")


def labels_from_scores(scores: Any, name: str) -> np.ndarray:
    """Row argmax of scores (n, k), the lowest index on ties, as int32 (n,)."""
    a = np.asarray(scores)
    if a.ndim != 2 or a.dtype.kind not in "iuf":
        raise InputError(f"{name}: expected numeric scores of shape (n, k), got shape {a.shape} and dtype {a.dtype}")
    if a.dtype.kind == "f":
        finite = np.isfinite(a).all(axis=1)
        if not finite.all():
            row = int(np.argmin(finite))
            raise InputError(f"{name}:{row + 1}: field 'scores': scores must be finite numbers")
    if a.dtype == np.float32:
        return _flipless.labels_from_scores(np.ascontiguousarray(a))
    if a.shape[1] == 0:
        raise InputError(f"{name}: scores of shape {a.shape} have no column")
    return np.argmax(a, axis=1).astype(np.int32)  # the first maximum: the lowest index on ties


def as_label_triple(y_true: Any, old: Any, new: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth, old and new labels of one dtype (int32 or int64), each in place where possible."""
    arrays = [as_labels(y_true, "y_true"), as_labels(old, "old_pred"), as_labels(new, "new_pred")]
    if len({a.dtype for a in arrays}) > 1:
        arrays = [a if a.dtype == np.int64 else a.astype(np.int64) for a in arrays]
    return arrays[0], arrays[1], arrays[2]


def as_weights(weights: Any) -> Any:
    """None, or a 1-D C-contiguous float64 array (float64 arrays are used as they are)."""
    if weights is None:
        return None
    w = np.ascontiguousarray(weights, dtype=np.float64)
    if w.ndim != 1:
        raise InputError(f"weights: expected shape (n,), got {w.shape}")
    return w


def as_int32(values: Any, name: str) -> np.ndarray:
    """A C-contiguous int32 copy of labels (class indices), checked to fit."""
    a = as_labels(values, name)
    if a.dtype == np.int64 and a.size and (a.min() < np.iinfo(np.int32).min or a.max() > np.iinfo(np.int32).max):
        raise InputError(f"{name}: labels must fit 32-bit class indices")
    return np.ascontiguousarray(a, dtype=np.int32)
