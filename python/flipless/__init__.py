"""flipless from Python: negative flips and backward-compatibility metrics over NumPy arrays,
the ``flipless compare`` report (with its HTML view in Jupyter), and the old-logit cache.

The C++ core is torch-free: importing flipless never loads libtorch, so it sits beside
PyTorch in one process.

    >>> import flipless
    >>> flipless.nfr([0, 1, 1, 0], [0, 1, 0, 0], [0, 0, 1, 0])   # truth, old, new
    0.25
"""
from __future__ import annotations

import os as _os

from . import _flipless
from ._cache import CacheVersion, Lookups, OldLogitCache, cache_key, normalize_text, open_cache
from ._compare import Report, compare
from ._data import Dataset, load_dataset
from ._errors import ConfigError, Error, InputError, IoError, ModelError, UndefinedMetricError
from ._metrics import (FlipCounts, Metrics, accuracy, backward_error_compatibility, backward_trust_compatibility, bec,
                       btc, flip_counts, mcnemar_p, metrics, negative_flip_impact, negative_flip_rate, nfi, nfr, pfr,
                       positive_flip_rate)

_flipless._set_error_classes(Error, InputError, ConfigError, ModelError, IoError)

# The bundled datasets ("sst2:dev", ...) ship inside the package; the C++ readers find them
# through FLIPLESS_DATA_DIR unless the user points it elsewhere.
_data = _os.path.join(_os.path.dirname(__file__), "data")
if _os.path.isdir(_os.path.join(_data, "sst2")):
    _os.environ.setdefault("FLIPLESS_DATA_DIR", _data)

try:
    from importlib.metadata import version as _version

    __version__ = _version("flipless")
except Exception:  # not installed as a distribution (e.g. imported from a build folder)
    __version__ = "unknown"

__all__ = [
    "metrics", "flip_counts", "accuracy", "negative_flip_rate", "positive_flip_rate", "negative_flip_impact",
    "backward_trust_compatibility", "backward_error_compatibility", "nfr", "pfr", "nfi", "btc", "bec", "mcnemar_p",
    "FlipCounts", "Metrics", "compare", "Report", "OldLogitCache", "open_cache", "CacheVersion", "Lookups",
    "cache_key", "normalize_text", "Dataset", "load_dataset", "Error", "InputError", "ConfigError", "ModelError", "IoError",
    "UndefinedMetricError",
]
