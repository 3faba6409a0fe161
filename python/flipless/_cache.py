"""The old-logit cache: the old model's logits kept after it is retired, in the same SQLite
files that ``flipless cache add``, ``flipless cache info`` and ``flipless serve`` use."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Union

import numpy as np

from . import _flipless
from ._errors import ConfigError, InputError

__all__ = ["OldLogitCache", "CacheVersion", "Lookups", "open_cache", "cache_key", "normalize_text"]


@dataclass(frozen=True)
class CacheVersion:
    """One legacy model's logits in a cache."""

    tag: str
    embedding_model: str  # the model whose embeddings were stored ("" when unnamed)
    created: str  # ISO 8601, UTC
    entries: int


@dataclass(frozen=True)
class Lookups:
    """Results of one batch of look-ups, row i for input i."""

    paths: List[str]  # "exact", "near" or "miss"
    old_logits: np.ndarray  # (n, num_labels) float32; NaN rows for misses
    distances: np.ndarray  # (n,) float32 Euclidean distance to the entry used (0 exact, NaN miss)

    @property
    def hits(self) -> np.ndarray:
        """Boolean (n,): True where the input found logits (exact or near)."""
        return np.array([p != "miss" for p in self.paths], dtype=bool)

    def __len__(self) -> int:
        return len(self.paths)


def cache_key(text: str, text_pair: Optional[str] = None) -> str:
    """The key of an input: "k" + 32 hex digits of a 128-bit hash of the normalised text(s).
    Inputs that differ only in whitespace or Unicode composition share a key."""
    return _flipless.cache_key(text, text_pair)


def normalize_text(text: str) -> str:
    """Unicode NFC, runs of whitespace as one space, trimmed."""
    return _flipless.normalize_text(text)


def _keys(texts: Optional[Sequence[str]], text_pairs: Optional[Sequence[str]], keys: Optional[Sequence[str]]) -> List[str]:
    if (texts is None) == (keys is None):
        raise ConfigError("give exactly one of texts= (hashed into keys) and keys=")
    if keys is not None:
        if text_pairs is not None:
            raise ConfigError("text_pairs= goes with texts=, not keys=")
        return [str(k) for k in keys]
    return _flipless.cache_keys([str(t) for t in texts], None if text_pairs is None else [str(t) for t in text_pairs])


def _matrix(values: Any, name: str, rows: int) -> np.ndarray:
    a = np.ascontiguousarray(values, dtype=np.float32)
    if a.ndim != 2:
        raise InputError(f"{name}: expected shape (n, k), got {a.shape}")
    if a.shape[0] != rows:
        raise InputError(f"{name}: {a.shape[0]} rows for {rows} inputs")
    return a


class OldLogitCache:
    """An old-logit cache file: SQLite in WAL mode, every ``put`` one transaction.

    ``num_labels`` and ``dim`` (the embedding width) are needed to create a cache and checked
    against an existing one (0: take them from the file); entries may still come without
    embeddings, for exact look-ups only. ``index`` is
    "auto", "exact" or "hnsw" for nearest-neighbour look-ups. Use as a context manager, or call
    ``close()``.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], *, num_labels: int = 0, dim: int = 0,
                 read_only: bool = False, index: str = "auto", exact_threshold: int = 20000,
                 ef_search: int = 256) -> None:
        self._core = _flipless.open_cache(os.fspath(path), num_labels, dim, read_only, index, exact_threshold, ef_search)

    @property
    def num_labels(self) -> int:
        return self._core.num_labels

    @property
    def dim(self) -> int:
        return self._core.dim

    @property
    def path(self) -> str:
        return self._core.path

    @property
    def closed(self) -> bool:
        return self._core.closed

    def put(self, version: str, texts: Optional[Sequence[str]] = None, old_logits: Any = None, *,
            embeddings: Any = None, text_pairs: Optional[Sequence[str]] = None, keys: Optional[Sequence[str]] = None,
            embedding_model: str = "", batch_size: Optional[int] = None) -> None:
        """Adds (or replaces) the old model's logits (n, num_labels) for n inputs — given as
        texts (and pairs), keyed by cache_key(), or as keys — under ``version`` (created when
        new), with the new model's embeddings (n, dim) for nearest-neighbour look-ups. One
        transaction per call, or per ``batch_size`` rows."""
        all_keys = _keys(texts, text_pairs, keys)
        if old_logits is None:
            raise InputError("old_logits: required, shape (n, num_labels)")
        logits = _matrix(old_logits, "old_logits", len(all_keys))
        emb = None if embeddings is None else _matrix(embeddings, "embeddings", len(all_keys))
        step = len(all_keys) if not batch_size else int(batch_size)
        if step <= 0 and all_keys:
            raise ConfigError(f"batch_size: {batch_size}; must be positive")
        for start in range(0, len(all_keys), max(step, 1)):
            stop = start + step
            self._core.put(version, all_keys[start:stop], logits[start:stop],
                           None if emb is None else emb[start:stop], embedding_model)

    def lookup(self, texts: Optional[Sequence[str]] = None, *, embeddings: Any = None,
               text_pairs: Optional[Sequence[str]] = None, keys: Optional[Sequence[str]] = None,
               version: Optional[str] = None, nearest: bool = True, max_distance: Optional[float] = None) -> Lookups:
        """Looks inputs up: an exact hit gives that entry's logits; else, with ``embeddings``
        (n, dim) and ``nearest``, the nearest entry's (within ``max_distance`` when given);
        else a miss. ``version`` defaults to the latest."""
        all_keys = _keys(texts, text_pairs, keys)
        emb = None if embeddings is None else _matrix(embeddings, "embeddings", len(all_keys))
        paths, logits, distances = self._core.lookup(all_keys, emb, version or "", nearest, max_distance)
        return Lookups(paths=paths, old_logits=logits, distances=distances)

    def versions(self) -> List[CacheVersion]:
        """Every version, oldest first."""
        return [CacheVersion(**v) for v in self._core.versions()]

    @property
    def latest_version(self) -> Optional[str]:
        return self._core.latest_version()

    def size(self, version: Optional[str] = None) -> int:
        """Entries of a version (the latest by default); 0 for an unknown one."""
        return self._core.size(version or "")

    def __len__(self) -> int:
        return self.size()

    def prepare(self, version: Optional[str] = None) -> None:
        """Builds (or loads from its snapshot) a version's nearest-neighbour index now."""
        self._core.prepare(version or "")

    def close(self) -> None:
        self._core.close()

    def __enter__(self) -> "OldLogitCache":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        if not hasattr(self, "_core") or self.closed:
            return "<flipless.OldLogitCache closed>"
        return f"<flipless.OldLogitCache {self.path!r} num_labels={self.num_labels} dim={self.dim}>"


def open_cache(path: Union[str, "os.PathLike[str]"], **options: Any) -> OldLogitCache:
    """Opens (or creates) an old-logit cache; options as for OldLogitCache."""
    return OldLogitCache(path, **options)
