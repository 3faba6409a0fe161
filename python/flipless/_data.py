"""Datasets as flipless reads them: bundled SST-2 and MRPC, GLUE files and generic CSV/TSV/JSONL."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from . import _flipless

__all__ = ["Dataset", "load_dataset"]


@dataclass(frozen=True)
class Dataset:
    """One dataset in file order; ids are the file's or content hashes of the text(s), the
    ids that prediction files and caches are keyed by."""

    name: str
    label_names: List[str]
    ids: List[str]
    texts: List[str]
    text_pairs: Optional[List[str]]
    labels: np.ndarray  # (n,) int32 indices into label_names; -1 where unlabelled

    def __len__(self) -> int:
        return len(self.ids)


def load_dataset(spec: str, *, text_column: str = "text", text_pair_column: str = "", label_column: str = "label",
                 id_column: str = "") -> Dataset:
    """Reads a dataset by spec: "sst2:dev", "mrpc:train" (bundled), "qnli:/path/dev.tsv" (a GLUE
    file), or a CSV/TSV/JSONL path with the given columns (``flipless data inspect`` reads the
    same). Bad rows raise InputError naming the file, line and column."""
    d = _flipless.load_dataset(spec, text_column, text_pair_column, label_column, id_column)
    return Dataset(**d)
