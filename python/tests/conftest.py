"""Shared fixtures: the repository, the `flipless` binary the Python results are checked against."""
import os
import pathlib
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def cli() -> str:
    """The flipless binary: $FLIPLESS_CLI, else build/release/flipless (scripts/test.sh sets the
    variable to the binary it built)."""
    path = os.environ.get("FLIPLESS_CLI") or str(REPO / "build" / "release" / "flipless")
    if not os.access(path, os.X_OK):
        pytest.skip(f"no flipless binary at {path} (build it, or set FLIPLESS_CLI)")
    return path


def run_cli(cli: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([cli, *map(str, args)], capture_output=True, text=True, check=False)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    return ""
