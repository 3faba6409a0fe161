"""The report's Jupyter view (_repr_html_) rendered by headless Chromium."""
import html
import re
import subprocess

import pytest

import flipless
from conftest import EXAMPLES, chromium


def render(browser, page, tmp_path, name):
    """Chromium's DOM of `page` and the size of its screenshot."""
    path = tmp_path / f"{name}.html"
    path.write_text(page)
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(base + ["--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr
    png = tmp_path / f"{name}.png"
    shot = subprocess.run(base + ["--window-size=1200,900", f"--screenshot={png}", path.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0, shot.stderr
    return dom.stdout, png.stat().st_size


def notebook_cell(fragment):
    # What a notebook does with _repr_html_: puts it inside its output area.
    return f"<!DOCTYPE html><html><body><div class='output_html'>{fragment}</div></body></html>"


def test_repr_html_renders_in_headless_chromium(tmp_path):
    browser = chromium()
    if not browser:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    report = flipless.compare(EXAMPLES / "sst2-dev-old.jsonl", EXAMPLES / "sst2-dev-new.jsonl", data="sst2:dev")
    fragment = report._repr_html_()
    # The fragment holds exactly the report page, escaped into the iframe's srcdoc.
    srcdoc = re.search(r'srcdoc="([^"]*)"', fragment).group(1)
    assert html.unescape(srcdoc) == report.to_html()

    # The page itself renders with its charts drawn.
    dom, _ = render(browser, report.to_html(), tmp_path, "page")
    assert "<h1>flipless compare</h1>" in dom
    assert dom.count("<svg") >= 2 and "<rect" in dom

    # In a notebook cell: the iframe is there, and its screenshot holds the report (the PNG of an
    # empty frame is a few kB; one with tables and charts many times that).
    dom, with_report = render(browser, notebook_cell(fragment), tmp_path, "cell")
    assert "<iframe" in dom
    _, empty = render(browser, notebook_cell('<iframe srcdoc="" style="width:100%;height:760px;border:1px solid #ddd">'
                                             "</iframe>"), tmp_path, "empty")
    assert with_report > 4 * empty and with_report > 20000, (with_report, empty)
