"""Helpers for the demo tests and benchmark: real faces pasted into one photo, bad files, a headless browser.

Real faces come from ``../shared/data/UTKFace`` (or ``$FACEPROMPT_SHARED_DATA``) and are read at run time,
never copied into the repository; without the data the tests that need it skip with the reason.
"""
from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from faceprompt import locations

REPO = Path(__file__).resolve().parents[1]
FACE_SIZE = 150  # pasted face side in pixels: well above every detector's minimum face
CELL = (205, 220)  # grid pitch (x, y): faces never overlap, boxes stay apart


def shared_data_root() -> Path:
    """The shared data folder as the package resolves it, relative to this checkout."""
    return locations.shared_data_root(REPO)


def utkface_dir() -> Path | None:
    folder = shared_data_root() / "UTKFace"
    return folder if folder.is_dir() else None


def require_utkface():
    """The UTKFace folder, or pytest.skip with the reason."""
    import pytest

    folder = utkface_dir()
    if folder is None:
        pytest.skip(f"shared data {shared_data_root() / 'UTKFace'} is absent (set FACEPROMPT_SHARED_DATA)")
    return folder


@lru_cache(maxsize=None)
def detectable_faces(n: int, detector: str = "dlib") -> tuple[Image.Image, ...]:
    """``n`` adult UTKFace chips (resized to FACE_SIZE) that ``detector`` finds alone: a deterministic pick.

    Why filter: a test about the pipeline must not fail because one chip is a profile the detector misses.
    """
    from faceprompt.detect import get_detector

    folder = utkface_dir()
    if folder is None:
        raise FileNotFoundError(f"{shared_data_root() / 'UTKFace'} is absent")
    det = get_detector(detector)
    picked = []
    for path in sorted(folder.iterdir())[::97]:
        age = path.name.split("_")[0]
        if not age.isdigit() or not 20 <= int(age) <= 60:
            continue
        chip = Image.open(path).convert("RGB").resize((FACE_SIZE, FACE_SIZE), Image.BICUBIC)
        if len(det.detect(np.asarray(chip))) == 1:
            picked.append(chip)
            if len(picked) == n:
                return tuple(picked)
    raise RuntimeError(f"only {len(picked)} detectable faces found, wanted {n}")


def paste_faces(faces, size: tuple[int, int] = (640, 480), columns: int = 3,
                background=(118, 124, 130)) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """Paste faces on a plain canvas in a grid; returns the photo and where each face went (x0, y0, x1, y1)."""
    canvas = Image.new("RGB", size, background)
    rows = -(-len(faces) // columns)
    # Centre the grid in the canvas.
    left = (size[0] - (columns - 1) * CELL[0] - FACE_SIZE) // 2 if len(faces) >= columns else 30
    top = (size[1] - (rows - 1) * CELL[1] - FACE_SIZE) // 2
    boxes = []
    for i, face in enumerate(faces):
        x, y = left + (i % columns) * CELL[0], top + (i // columns) * CELL[1]
        if x + FACE_SIZE > size[0] or y + FACE_SIZE > size[1]:
            raise ValueError(f"{len(faces)} faces do not fit a {size} canvas with {columns} columns")
        canvas.paste(face, (x, y))
        boxes.append((x, y, x + FACE_SIZE, y + FACE_SIZE))
    return canvas, boxes


@lru_cache(maxsize=None)
def held_out_faces(n: int, detector: str = "dlib") -> tuple[tuple[Path, ...], tuple[str, ...]]:
    """``n`` adult UTKFace photos from faceclip-tiny's held-out test split in which ``detector`` finds one
    face, and their genders ("male"/"female", from the file names): faces the model never trained on."""
    from faceprompt.detect import get_detector
    from faceprompt.book.leakage import model_splits

    folder = utkface_dir()
    if folder is None:
        raise FileNotFoundError(f"{shared_data_root() / 'UTKFace'} is absent")
    splits = model_splits("faceclip-tiny")
    keys = sorted(splits.loc[(splits["dataset"] == "utkface") & (splits["split"] == "test"), "key"])
    det = get_detector(detector)
    faces, genders = [], []
    for key in keys[::23]:
        age, gender = key.split("_")[:2]
        if not (age.isdigit() and 20 <= int(age) <= 60 and gender in ("0", "1")):
            continue
        if len(det.detect(np.asarray(Image.open(folder / key).convert("RGB")))) == 1:
            faces.append(folder / key)
            genders.append("male" if gender == "0" else "female")  # UTKFace: 0 male, 1 female
            if len(faces) == n:
                return tuple(faces), tuple(genders)
    raise RuntimeError(f"only {len(faces)} detectable held-out faces found, wanted {n}")


def group_photo(n: int, size: tuple[int, int] = (640, 480), columns: int = 3):
    """A photo of ``n`` real faces (skips the test without shared data)."""
    require_utkface()
    return paste_faces(detectable_faces(n), size, columns)


def inside(box, region, slack: float = 0.3) -> bool:
    """Whether the centre of detection ``box`` lies in ``region`` shrunk by ``slack`` of its size (the middle
    40%: a box follows a face turned aside, and pasted faces stand more than half a face apart)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0, y0, x1, y1 = region
    dx, dy = (x1 - x0) * slack, (y1 - y0) * slack
    return x0 + dx <= cx <= x1 - dx and y0 + dy <= cy <= y1 - dy


# --- bad files -------------------------------------------------------------------------------------------

def write_text_as_jpeg(path: Path) -> Path:
    path.write_text("this is a shopping list, not a photo\n")
    return path


def write_truncated_jpeg(path: Path, photo: Image.Image) -> Path:
    full = path.with_suffix(".full.jpg")
    photo.save(full, quality=90)
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # header intact, most scan data gone
    full.unlink()
    return path


def write_huge_png(path: Path, width: int = 9000, height: int = 6000) -> Path:
    """54 megapixels (over the 50 MP limit) in a few hundred KB: a flat PNG compresses ~1000:1."""
    Image.new("L", (width, height), 200).save(path, optimize=False)
    return path


def write_exif_rotated(path: Path, upright: Image.Image) -> Path:
    """Pixels stored sideways with EXIF Orientation=6 ('rotate 90 degrees clockwise to view')."""
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif.tobytes(), quality=92)
    return path


def write_video(path: Path, frames: list[Image.Image], fps: float = 5.0) -> Path:
    import cv2

    width, height = frames[0].size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(np.asarray(frame), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


# --- a real headless browser over the Chrome DevTools protocol ------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1400"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer means the server is up
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


class Browser:
    """Headless chromium driven over one DevTools websocket: navigate, evaluate JS, upload, screenshot."""

    def __init__(self, chromium: str):
        import websocket  # websocket-client, a Jupyter dependency

        self._profile = tempfile.mkdtemp(prefix="fp-chromium-")
        self.process = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = self._devtools_port(timeout=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            page = next(t for t in json.load(response) if t["type"] == "page")
        self._ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self._id = 0
        self._events: list[dict] = []

    def _devtools_port(self, timeout: float) -> int:
        # Chromium writes the port it picked into the profile folder.
        marker = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker.is_file() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.process.returncode}")
            time.sleep(0.1)
        raise TimeoutError("chromium did not open its DevTools port")

    def call(self, method: str, **params) -> dict:
        self._id += 1
        self._ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self._events.append(message)  # kept for wait_event

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        """The params of the next DevTools event named ``method``."""
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self._events):
                if event["method"] == method:
                    return self._events.pop(i)["params"]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} event within {timeout:.0f} s")
            self._ws.settimeout(max(deadline - time.monotonic(), 0.1))
            try:
                message = json.loads(self._ws.recv())
            except Exception:  # websocket timeout: check the deadline again
                continue
            finally:
                self._ws.settimeout(60)
            if "method" in message:
                self._events.append(message)

    def navigate(self, url: str) -> None:
        self.call("Page.enable")
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float, what: str):
        """Poll a JS expression until it is truthy; TimeoutError names ``what`` and the page text."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.5)
        text = self.evaluate("document.body ? document.body.innerText.slice(0, 2000) : ''")
        raise TimeoutError(f"{what} not seen within {timeout:.0f} s; page text: {text!r}")

    def upload(self, button_selector: str, path: Path) -> None:
        """Click an upload button as a user would and answer its file chooser with ``path``.

        Why the chooser: ipywidgets' FileUpload keeps its ``<input type=file>`` out of the document, so the
        only way in is the dialog the click opens, which DevTools intercepts.
        """
        self.call("Page.setInterceptFileChooserDialog", enabled=True)
        clicked = self.call("Runtime.evaluate", userGesture=True, returnByValue=True,
                            expression=f"(() => {{ const b = document.querySelector({json.dumps(button_selector)});"
                                       f" if (!b) return false; b.click(); return true }})()")
        if not clicked.get("result", {}).get("value"):
            raise RuntimeError(f"no element matches {button_selector!r}")
        chooser = self.wait_event("Page.fileChooserOpened")
        self.call("DOM.setFileInputFiles", backendNodeId=chooser["backendNodeId"], files=[str(path)])

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self._ws.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            shutil.rmtree(self._profile, ignore_errors=True)
