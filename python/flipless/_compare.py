"""Comparing an old and a new model: the report of ``flipless compare``, from Python."""
from __future__ import annotations

import html
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _flipless
from ._arrays import as_int32
from ._errors import ConfigError, InputError

__all__ = ["Report", "compare"]

PathLike = Union[str, "os.PathLike[str]"]


class Report:
    """A comparison of two models: the same numbers and renderings as ``flipless compare``.

    Metric attributes (``nfr``, ``btc``, ...) are fractions in [0, 1], or None where a ratio is
    undefined (a zero denominator); ``intervals`` holds their paired-bootstrap 95% intervals.
    In Jupyter the report shows as the HTML report, SVG charts inline.
    """

    def __init__(self, core: Any) -> None:
        self._core = core
        self._json = core.render("json")
        self._dict: Dict[str, Any] = json.loads(self._json)
        m = self._dict["metrics"]
        self.n: int = self._dict["n"]
        self.old_source: str = self._dict["old"]
        self.new_source: str = self._dict["new"]
        self.labels_from: str = self._dict["labels_from"]
        self.label_names: List[str] = self._dict["label_names"]
        self.old_accuracy: Optional[float] = m["old_accuracy"]["value"]
        self.new_accuracy: Optional[float] = m["new_accuracy"]["value"]
        self.accuracy_delta: Optional[float] = m["accuracy_delta"]["value"]
        self.nfr: Optional[float] = m["nfr"]["value"]
        self.pfr: Optional[float] = m["pfr"]["value"]
        self.nfi: Optional[float] = m["nfi"]["value"]
        self.btc: Optional[float] = m["btc"]["value"]
        self.bec: Optional[float] = m["bec"]["value"]
        self.intervals: Dict[str, Optional[Tuple[float, float]]] = {
            name: (tuple(v["ci95"]) if v.get("ci95") is not None else None) for name, v in m.items()
        }
        self.mcnemar_p: float = self._dict["mcnemar_p"]
        self.flip_table: Dict[str, float] = self._dict["flip_table"]
        self.per_class: List[Dict[str, Any]] = self._dict["per_class"]

    @property
    def ids(self) -> List[str]:
        """Example ids, in the old predictions' order."""
        return self._core.ids

    @property
    def y_true(self) -> np.ndarray:
        """True labels (n,) as class indices into ``label_names``."""
        return self._core.y_true

    @property
    def old_pred(self) -> np.ndarray:
        return self._core.old_pred

    @property
    def new_pred(self) -> np.ndarray:
        return self._core.new_pred

    def negative_flips(self) -> List[Dict[str, Any]]:
        """Every negative flip (old right, new wrong) as a dict, most confident old prediction
        first: id, label, old_pred, new_pred (label names), old_confidence, new_confidence (None
        without scores), and text (and text_pair) when texts were given.
        ``pandas.DataFrame(report.negative_flips())`` makes a table of them."""
        return self._core.negative_flips()

    def to_dict(self) -> Dict[str, Any]:
        """Everything in the report, as ``flipless compare --format json`` writes it."""
        return json.loads(self._json)

    def to_json(self) -> str:
        """The report as ``flipless compare --format json`` writes it."""
        return self._json

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown tables, as ``--format markdown``."""
        return self._core.render("markdown")

    def to_text(self) -> str:
        """The aligned terminal report, as ``flipless compare`` prints it."""
        return self._core.render("text")

    def to_html(self) -> str:
        """One self-contained HTML page with SVG charts, as ``--format html``."""
        return self._core.render("html")

    def _repr_html_(self) -> str:
        # The page in an iframe, so its stylesheet stays out of the notebook's.
        page = html.escape(self.to_html(), quote=True)
        return (f'<iframe srcdoc="{page}" title="flipless compare report" '
                'style="width:100%;height:760px;border:1px solid #ddd"></iframe>')

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        def pct(v: Optional[float]) -> str:
            return "undefined" if v is None else f"{100 * v:.2f}%"

        return (f"<flipless.Report n={self.n} old_accuracy={pct(self.old_accuracy)} "
                f"new_accuracy={pct(self.new_accuracy)} nfr={pct(self.nfr)} btc={pct(self.btc)}>")


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


def _side(values: Any, name: str, scores: str) -> Tuple[Any, Any, str]:
    """(labels int32 or None, scores float64 (n, k) or None, kind) for one model."""
    a = np.asarray(values)
    if a.ndim == 2:
        s = np.ascontiguousarray(a, dtype=np.float64)
        kind = scores
        if kind == "auto":
            with np.errstate(invalid="ignore"):
                probs = bool(np.all((s >= 0) & (s <= 1)) and np.all(np.abs(s.sum(axis=1) - 1) <= 1e-2))
            kind = "probs" if probs else "logits"
        return None, s, kind
    return as_int32(a, name), None, "none"


def _strings(values: Optional[Sequence[Any]]) -> Optional[List[str]]:
    return None if values is None else [str(v) for v in values]


def compare(
    old: Union[PathLike, Any],
    new: Union[PathLike, Any],
    labels: Any = None,
    texts: Optional[Sequence[str]] = None,
    *,
    text_pairs: Optional[Sequence[str]] = None,
    ids: Optional[Sequence[Any]] = None,
    data: Optional[str] = None,
    label_names: Optional[Sequence[str]] = None,
    scores: str = "auto",
    top: int = 10,
    bootstrap: int = 1000,
    seed: int = 0,
    text_column: str = "text",
    text_pair_column: str = "",
    label_column: str = "label",
    id_column: str = "",
) -> Report:
    """Compares an old and a new model, as ``flipless compare`` does.

    From prediction files: ``old`` and ``new`` are paths (JSONL or CSV, joined by id); true
    labels come from the files or from ``data``, a dataset spec ("sst2:dev", "qnli:PATH", a
    CSV/TSV/JSONL path with ``text_column`` ...), which also gives the texts.

    From arrays: ``old`` and ``new`` are labels (n,) or scores (n, k) — probabilities or
    logits (``scores="auto"`` tells them apart: rows in [0, 1] summing to 1 are
    probabilities) — row i of each being example i; ``labels`` (n,) are the true labels;
    ``texts`` (and ``text_pairs``) the inputs, for the report's flip examples and length
    slices; ``ids`` name the rows (default "0", "1", ...).

    ``label_names`` names the classes in score-column order; ``top`` negative flips are
    listed; intervals come from ``bootstrap`` paired resamples with ``seed``.
    """
    if scores not in ("auto", "probs", "logits"):
        raise ConfigError(f"scores: '{scores}'; expected auto, probs or logits")
    names = _strings(label_names) or []
    if _is_path(old) != _is_path(new):
        raise ConfigError("compare: give both models as prediction files, or both as arrays")
    if _is_path(old):
        if labels is not None or texts is not None or text_pairs is not None or ids is not None:
            raise ConfigError("compare: with prediction files, true labels and texts come from the files or from data=")
        core = _flipless.compare_files(
            os.fspath(old), os.fspath(new), data=data, label_names=names, top=top, bootstrap=bootstrap, seed=seed,
            text_column=text_column, text_pair_column=text_pair_column, label_column=label_column,
            id_column=id_column)
        return Report(core)
    if data is not None:
        raise ConfigError("compare: data= names a dataset for prediction files; with arrays give labels= and texts=")
    if labels is None:
        raise InputError("labels: the true labels are needed to compare arrays (labels=...)")
    old_labels, old_scores, old_kind = _side(old, "old", scores)
    new_labels, new_scores, new_kind = _side(new, "new", scores)
    y = as_int32(labels, "labels")
    row_ids = _strings(ids) if ids is not None else [str(i) for i in range(len(y))]
    core = _flipless.compare_arrays(
        old_labels, old_scores, old_kind, new_labels, new_scores, new_kind, y, row_ids,
        _strings(texts), _strings(text_pairs), names, top, bootstrap, seed)
    return Report(core)
