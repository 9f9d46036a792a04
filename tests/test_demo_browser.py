"""The Voila page in a real headless chromium: upload a photo, wait for the labelled faces, take a screenshot.

Needs Debian's chromium (``apt-get install -y chromium``); skipped with the reason when it is absent.
Set FACEPROMPT_SCREENSHOTS=DIR to keep the screenshots.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
import demo_helpers as h  # noqa: E402

from faceprompt.demo.app import voila_command, write_notebook  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

STATUS_JS = ("Array.from(document.querySelectorAll('.faceprompt-demo .widget-html-content'))"
             ".map(e => e.innerText).join('\\n')")


@pytest.fixture
def voila(tmp_path):
    """Voila serving the app on 127.0.0.1 at a free port; stopped after the test."""
    notebook = write_notebook(tmp_path / "demo.ipynb", runs_dir=None)
    port = h.free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    log = open(tmp_path / "voila.log", "wb")
    process = subprocess.Popen(voila_command(notebook, port), cwd=tmp_path, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        h.wait_for_http(f"http://127.0.0.1:{port}/voila/static/", timeout=90, process=process)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture
def browser():
    chromium = h.chromium_path()
    if chromium is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
    session = h.Browser(chromium)
    yield session
    session.close()


def test_upload_in_the_voila_page(voila, browser, tmp_path):
    photo, _ = h.group_photo(2)
    good = tmp_path / "pair.jpg"
    photo.save(good, quality=92)
    bad = h.write_text_as_jpeg(tmp_path / "notes.jpg")
    shots = Path(os.environ.get("FACEPROMPT_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)

    browser.navigate(voila)
    # Voila runs the notebook (imports torch, builds the widgets) before the upload button appears.
    browser.wait_for("document.querySelector('.faceprompt-demo .widget-upload') !== null", 180, "upload button")
    browser.upload(".faceprompt-demo .widget-upload", good)
    browser.wait_for("document.querySelectorAll('.fp-face').length === 2", 120, "two face cards")
    status = browser.evaluate(STATUS_JS)
    assert "pair.jpg: 2 faces | detect " in status and "classify" in status
    assert "Traceback" not in browser.evaluate("document.body.innerText")
    # The annotated photo is on the page, at the photo's size.
    size = browser.evaluate("(() => { const i = document.querySelector('.faceprompt-demo img.widget-image');"
                            " return i && i.complete ? [i.naturalWidth, i.naturalHeight] : null })()")
    assert size == [640, 480]
    shot = browser.screenshot(shots / "demo_voila_result.png")
    assert Image.open(shot).size[0] >= 640

    # A bad file: a message, no traceback, and the page still answers.
    browser.upload(".faceprompt-demo .widget-upload", bad)
    browser.wait_for(f"({STATUS_JS}).includes('Could not process this file')", 60, "the error message")
    text = browser.evaluate("document.body.innerText")
    assert "notes.jpg: unreadable image" in text and "Traceback" not in text
    assert browser.evaluate("document.querySelectorAll('.fp-face').length") == 0
    browser.screenshot(shots / "demo_voila_error.png")
