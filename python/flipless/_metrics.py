"""Flip metrics over label arrays, computed by the C++ library (flipless::metrics).

Arguments are in the order truth, old, new. Each of ``old`` and ``new`` may be labels (n,)
or scores (n, k): probabilities or logits, whose row argmax (the lowest index on ties) is the
prediction. int32 and int64 C-contiguous label arrays are read where they lie, never copied.
Rates are fractions in [0, 1]. A metric whose denominator is zero raises
UndefinedMetricError; ``metrics()`` shows it as None. Nothing undefined is ever reported as 0.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, NamedTuple, Optional

from . import _flipless
from ._arrays import as_label_triple, as_labels, as_weights
from ._errors import UndefinedMetricError

__all__ = [
    "FlipCounts", "Metrics", "flip_counts", "metrics", "accuracy", "negative_flip_rate", "positive_flip_rate",
    "negative_flip_impact", "backward_trust_compatibility", "backward_error_compatibility", "nfr", "pfr", "nfi",
    "btc", "bec", "mcnemar_p",
]

# Why each ratio can be undefined: its denominator.
_UNDEFINED = {
    "nfi": "the new model makes no error (NFI = negative flips / new errors)",
    "btc": "the old model is never right (BTC = both correct / old correct)",
    "bec": "the new model makes no error (BEC = both wrong / new errors)",
}


class FlipCounts(NamedTuple):
    """The 2x2 flip table: examples (or their total weight) by old-correct x new-correct."""

    both_correct: float
    negative_flips: float  # old right, new wrong
    positive_flips: float  # old wrong, new right
    both_wrong: float

    @property
    def total(self) -> float:
        return self.both_correct + self.negative_flips + self.positive_flips + self.both_wrong

    @property
    def old_correct(self) -> float:
        return self.both_correct + self.negative_flips

    @property
    def new_correct(self) -> float:
        return self.both_correct + self.positive_flips

    @property
    def new_errors(self) -> float:
        return self.negative_flips + self.both_wrong


@dataclass(frozen=True)
class Metrics:
    """Every scalar metric of an old/new pair; None where a ratio is undefined."""

    n: int  # examples
    weighted: bool
    counts: FlipCounts
    old_accuracy: float
    new_accuracy: float
    accuracy_delta: float  # new - old (= pfr - nfr)
    nfr: float  # negative flips / n
    pfr: float  # positive flips / n
    nfi: Optional[float]  # negative flips / new errors
    btc: Optional[float]  # both correct / old correct
    bec: Optional[float]  # both wrong / new errors

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["counts"] = self.counts._asdict()
        return d


def flip_counts(y_true: Any, old: Any, new: Any, weights: Any = None) -> FlipCounts:
    """The flip table of an old/new pair; with ``weights`` (n,), each cell is a sum of weights."""
    y, o, n = as_label_triple(y_true, old, new)
    return FlipCounts(*_flipless.count_flips(y, o, n, as_weights(weights)))


def metrics(y_true: Any, old: Any, new: Any, weights: Any = None) -> Metrics:
    """Accuracies, NFR, PFR, NFI, BTC and BEC of an old/new pair, from one pass over the arrays."""
    y, o, n = as_label_triple(y_true, old, new)
    counts = FlipCounts(*_flipless.count_flips(y, o, n, as_weights(weights)))
    values = _flipless.metric_values(tuple(counts))
    return Metrics(n=len(y), weighted=weights is not None, counts=counts, **values)


def _defined(name: str, y_true: Any, old: Any, new: Any, weights: Any) -> float:
    counts = flip_counts(y_true, old, new, weights)
    value = _flipless.metric_value(tuple(counts), name)
    if value is None:
        raise UndefinedMetricError(f"{_flipless.metric_label(name)} is undefined: {_UNDEFINED[name]}")
    return value


def accuracy(y_true: Any, pred: Any, weights: Any = None) -> float:
    """Fraction of examples (or of their weight) that ``pred`` gets right."""
    p = as_labels(pred, "pred")
    return _defined("old_accuracy", y_true, p, p, weights)


def negative_flip_rate(y_true: Any, old: Any, new: Any, weights: Any = None) -> float:
    """NFR: examples the old model gets right and the new one wrong, over all examples."""
    return _defined("nfr", y_true, old, new, weights)


def positive_flip_rate(y_true: Any, old: Any, new: Any, weights: Any = None) -> float:
    """PFR: examples the old model gets wrong and the new one right, over all examples."""
    return _defined("pfr", y_true, old, new, weights)


def negative_flip_impact(y_true: Any, old: Any, new: Any, weights: Any = None) -> float:
    """NFI: negative flips over the new model's errors. Raises UndefinedMetricError when the
    new model makes no error."""
    return _defined("nfi", y_true, old, new, weights)


def backward_trust_compatibility(y_true: Any, old: Any, new: Any, weights: Any = None) -> float:
    """BTC (Bansal et al. 2019): both correct over old correct. Raises UndefinedMetricError when
    the old model is never right (BackwardCompatibilityML returns 0 there)."""
    return _defined("btc", y_true, old, new, weights)


def backward_error_compatibility(y_true: Any, old: Any, new: Any, weights: Any = None) -> float:
    """BEC (Srivastava et al. 2020): both wrong over the new model's errors. Raises
    UndefinedMetricError when the new model makes no error. (BackwardCompatibilityML divides by
    the old model's errors instead; see docs/metrics.md.)"""
    return _defined("bec", y_true, old, new, weights)


nfr = negative_flip_rate
pfr = positive_flip_rate
nfi = negative_flip_impact
btc = backward_trust_compatibility
bec = backward_error_compatibility


def mcnemar_p(y_true: Any, old: Any, new: Any) -> float:
    """Two-sided exact McNemar p-value of the negative against the positive flips."""
    counts = flip_counts(y_true, old, new)
    return _flipless.mcnemar_exact_p(int(counts.negative_flips), int(counts.positive_flips))
