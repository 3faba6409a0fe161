"""The package as installed: no libtorch in the process, stubs and data shipped, exceptions typed."""
import pathlib
import subprocess
import sys

import flipless


def test_import_loads_no_libtorch():
    # A fresh interpreter: what importing flipless maps into memory, libraries included.
    code = "import flipless; print(open('/proc/self/maps').read())"
    maps = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "_flipless" in maps
    for lib in ("libtorch", "libc10"):
        assert lib not in maps, f"import flipless mapped {lib}"


def test_stubs_and_data_ship_with_the_package():
    root = pathlib.Path(flipless.__file__).parent
    stub = (root / "_flipless.pyi").read_text()
    assert "def count_flips(" in stub and "class OldLogitCache" in stub
    assert (root / "py.typed").exists()
    assert (root / "data" / "sst2").is_dir()
    assert len(flipless.load_dataset("sst2:dev")) == 872


def test_exception_hierarchy():
    assert issubclass(flipless.InputError, (flipless.Error, ValueError))
    assert issubclass(flipless.ConfigError, ValueError)
    assert issubclass(flipless.IoError, OSError) and issubclass(flipless.IoError, flipless.Error)
    assert issubclass(flipless.UndefinedMetricError, ValueError)
    err = flipless.InputError("dev.jsonl:3: field 'probs': probabilities must lie in [0, 1]")
    assert (err.filename, err.line, err.field) == ("dev.jsonl", 3, "probs")
    assert flipless.InputError("no examples").line is None
