"""The exceptions flipless raises: one hierarchy, as in the C++ library (flipless/core/error.h).

Every C++ ``flipless::Error`` becomes one of these; bad input is a ``ValueError`` and an
unreadable file an ``OSError``, so code that already catches those keeps working.
"""
from __future__ import annotations

import re
from typing import Optional

__all__ = ["Error", "InputError", "ConfigError", "ModelError", "IoError", "UndefinedMetricError"]

# "dev.jsonl:3: field 'probs': ..." and "dev.tsv:3: column 'label': ..."
_LOCATION = re.compile(r"^(?P<file>[^\n]+?):(?P<line>\d+): (?:field|column) '(?P<field>[^']*)'")


class Error(Exception):
    """Base of every error a user can cause (bad data, options, files); never a bug."""


class InputError(Error, ValueError):
    """Malformed or inconsistent input: rows, columns, ids, labels, array shapes.

    Where the message names a place (``file:line: field 'name': ...``), ``filename``,
    ``line`` and ``field`` hold it; otherwise they are None. Arrays are named by their
    argument, and their rows count from 1 as a file's lines do.
    """

    filename: Optional[str]
    line: Optional[int]
    field: Optional[str]

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        found = _LOCATION.match(message) if isinstance(message, str) else None
        self.filename = found["file"] if found else None
        self.line = int(found["line"]) if found else None
        self.field = found["field"] if found else None


class ConfigError(Error, ValueError):
    """A bad option or configuration value."""


class ModelError(Error, RuntimeError):
    """A model or checkpoint that cannot be used."""


class IoError(Error, OSError):
    """A file that cannot be opened, read or written, or one that is not what it should be."""


class UndefinedMetricError(Error, ValueError):
    """A metric whose denominator is zero for these inputs (e.g. NFI when the new model makes
    no error). The C++ library returns ``std::nullopt`` there; flipless never reports 0."""

for _cls in (Error, InputError, ConfigError, ModelError, IoError, UndefinedMetricError):
    _cls.__module__ = "flipless"
