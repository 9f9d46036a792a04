"""The interactive demo: upload a photo, see every face boxed and labelled, with per-face probability bars.

In a notebook (the last line displays the app)::

    from faceprompt.demo.app import build_app
    build_app()

As a standalone page, served by Voila on 127.0.0.1::

    faceprompt demo --serve --port 8866

A bad upload (not an image, truncated, too many pixels, no face) shows a one-line message in the app instead
of a traceback, and the next upload works as before.
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets
from PIL import Image

from faceprompt.data.images import DEFAULT_MAX_PIXELS, load_rgb
from faceprompt.demo.pipeline import FacePipeline, FaceResult, FrameResult, draw

ZERO_SHOT = "zero-shot"


@dataclass(frozen=True)
class RunInfo:
    """A trained run folder the app can offer: ``config.json`` + ``prompts.safetensors``."""

    path: Path
    method: str
    backbone: str
    shipped: bool = False

    @property
    def label(self) -> str:
        return f"{self.path.name} ({self.method}{', shipped' if self.shipped else ''})"


def find_runs(runs_dir: str | os.PathLike | None) -> list[RunInfo]:
    """Run folders directly under ``runs_dir`` (sorted by name); unreadable configs are skipped."""
    from faceprompt.checkpoint import CONFIG_FILE, PROMPTS_FILE

    if runs_dir is None or not Path(runs_dir).is_dir():
        return []
    runs = []
    for folder in sorted(Path(runs_dir).iterdir()):
        config = folder / CONFIG_FILE
        if not (config.is_file() and (folder / PROMPTS_FILE).is_file()):
            continue
        try:
            data = json.loads(config.read_text())
            runs.append(RunInfo(folder, str(data["method"]), str(data["backbone"])))
        except (OSError, ValueError, KeyError):
            continue
    return runs


def shipped_runs() -> list[RunInfo]:
    """The tuned run that ships with the embedded model, when the package has one."""
    from faceprompt.predict import SHIPPED_RUN

    return [RunInfo(r.path, r.method, r.backbone, shipped=True) for r in find_runs(SHIPPED_RUN.parent)
            if r.path == SHIPPED_RUN]


def usable_backbones() -> list[str]:
    """Backbones whose weights are on this machine (embedded, cached, or random test towers)."""
    from faceprompt.backbones import BACKBONES, weights_available

    return [name for name in BACKBONES if weights_available(name) != "missing"]


def decode_upload(data: bytes, name: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Uploaded bytes -> upright RGB image, through the same ``load_rgb`` as files (errors name ``name``)."""
    from faceprompt.data.images import ImageLoadError

    if not data:
        raise ImageLoadError(f"{name}: the file is empty")
    suffix = Path(name).suffix if len(Path(name).suffix) <= 6 else ""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            return load_rgb(path, max_pixels=max_pixels)
        except ImageLoadError as err:
            raise ImageLoadError(str(err).replace(str(path), name)) from None


def _jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def face_card(index: int, face: FaceResult, crop: Image.Image | None = None) -> str:
    """HTML for one face: its thumbnail and one bar per class of every task, the top class in bold."""
    thumb = ""
    if crop is not None:
        data = base64.b64encode(_jpeg_bytes(crop.resize((96, 96)))).decode()
        thumb = f'<img src="data:image/jpeg;base64,{data}" width="96" height="96" style="border-radius:4px">'
    tables = []
    doubt = ('<br><span class="fp-uncertain" style="color:#b35900">uncertain: '
             f'{html.escape(", ".join(face.uncertain))}</span>') if face.uncertain else ""
    for task, pred in face.predictions.items():
        rows = []
        for cls, p in pred.probabilities.items():
            weight = "bold" if cls == pred.label else "normal"
            rows.append(
                f'<tr style="font-weight:{weight}"><td style="padding-right:6px">{html.escape(cls)}</td>'
                f'<td style="width:120px"><div style="background:#e6e6e6;height:10px;width:120px">'
                f'<div style="background:#0072b2;height:10px;width:{100 * p:.1f}%"></div></div></td>'
                f'<td style="text-align:right;padding-left:6px">{100 * p:.1f}%</td></tr>')
        mark = " ?" if task in face.uncertain else ""
        tables.append(f'<div style="margin-right:18px"><b>{html.escape(task)}{mark}</b>'
                      f'<table style="font-size:12px">{"".join(rows)}</table></div>')
    return (f'<div class="fp-face" style="display:flex;align-items:flex-start;margin:8px 0;padding:6px;'
            f'border:1px solid #ccc;border-radius:6px"><div style="margin-right:12px;text-align:center">'
            f'{thumb}<div>face {index + 1}<br>score {face.score:.2f}{doubt}</div></div>{"".join(tables)}</div>')


class DemoApp:
    """The widget tree and its callbacks; models and detectors are loaded on first use and cached."""

    def __init__(self, backbone: str | None = None, runs_dir: str | os.PathLike | None = "runs",
                 detector: str | None = None, margin: float = 0.25, device: str = "cpu",
                 max_pixels: int | None = DEFAULT_MAX_PIXELS):
        from faceprompt.detect import available_detectors, demo_detector
        from faceprompt.predict import default_backbone

        self.margin, self.device, self.max_pixels = margin, device, max_pixels
        self.runs = shipped_runs() + find_runs(runs_dir)
        backbones = usable_backbones()
        backbone = backbone or default_backbone()
        if backbone not in backbones:
            backbones.append(backbone)  # asked for explicitly: loading it will say what is missing
        self.backbone = widgets.Dropdown(options=backbones, value=backbone, description="Backbone")
        self.run = widgets.Dropdown(description="Prompts")
        self.detector = widgets.Dropdown(options=available_detectors(), value=detector or demo_detector(),
                                         description="Detector")
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload photo")
        self.status = widgets.HTML("Upload a photo to find and label its faces.")
        self.image = widgets.Image(format="jpeg", layout=widgets.Layout(max_width="100%", height="auto",
                                                                        display="none"))
        self.faces = widgets.HTML()
        self.widget = widgets.VBox([
            widgets.HBox([self.backbone, self.run, self.detector]),
            self.upload, self.status, self.image, self.faces,
        ])
        self.widget.add_class("faceprompt-demo")
        self._backbones: dict[str, object] = {}
        self._classifiers: dict[tuple[str, str], object] = {}
        self._detectors: dict[str, object] = {}
        self._last: tuple[str, bytes] | None = None
        self._refreshing = False
        self._refresh_runs()
        self.upload.observe(self._on_upload, names="value")
        self.backbone.observe(self._on_backbone, names="value")
        self.run.observe(self._on_setting, names="value")
        self.detector.observe(self._on_setting, names="value")

    def _repr_mimebundle_(self, **kwargs):
        # Displaying the app displays its widget: `build_app()` as a cell's last line shows it.
        return self.widget._repr_mimebundle_(**kwargs)

    # --- models -------------------------------------------------------------------------------------

    def _refresh_runs(self) -> None:
        """Offer only the runs trained on the chosen backbone (a run can't load on another)."""
        matching = [r for r in self.runs if r.backbone == self.backbone.value]
        shipped = [(r.label, str(r.path)) for r in matching if r.shipped]
        trained = [(r.label, str(r.path)) for r in matching if not r.shipped]
        self._refreshing = True  # changing the options fires the run observer: one re-run is enough
        try:
            # The shipped tuned run, when it fits the backbone, comes first and answers by default.
            self.run.options = shipped + [(ZERO_SHOT, ZERO_SHOT)] + trained
            self.run.value = self.run.options[0][1]
        finally:
            self._refreshing = False

    def pipeline(self) -> FacePipeline:
        """The pipeline for the current backbone / prompts / detector choice (loaded once, then cached)."""
        from faceprompt.backbones import load_backbone
        from faceprompt.detect import get_detector
        from faceprompt.predict import FaceClassifier

        name, run = self.backbone.value, self.run.value
        if (name, run) not in self._classifiers:
            if name not in self._backbones:
                self._set_status(f"Loading backbone {html.escape(name)}…")
                self._backbones[name] = load_backbone(name, device=self.device)
            classifier = FaceClassifier.load(self._backbones[name], run_dir=None if run == ZERO_SHOT else run,
                                             device=self.device, zero_shot=run == ZERO_SHOT)
            self._classifiers[(name, run)] = classifier
            classifier.predict([Image.new("RGB", (64, 64))])  # warm-up: the first photo's timing is the real one
        if self.detector.value not in self._detectors:
            self._detectors[self.detector.value] = get_detector(self.detector.value)
        return FacePipeline(self._detectors[self.detector.value], self._classifiers[(name, run)],
                            margin=self.margin, max_pixels=self.max_pixels)

    # --- callbacks ----------------------------------------------------------------------------------

    def _on_upload(self, change) -> None:
        files = change["new"]
        if files:
            item = files[0]
            self.process(item["name"], bytes(item["content"]))
            self.upload.value = ()  # so uploading the same file again fires again

    def _on_backbone(self, _change) -> None:
        self._refresh_runs()
        self._on_setting(None)

    def _on_setting(self, _change) -> None:
        if self._last is not None and not self._refreshing:
            self.process(*self._last)  # show the last photo with the new choice

    # --- the work -----------------------------------------------------------------------------------

    def process(self, name: str, data: bytes) -> FrameResult | None:
        """Annotate one uploaded file and show it; a problem is shown as a message and returns None."""
        self._last = (name, data)
        self._set_status(f"Working on {html.escape(name)}…")
        try:
            image = decode_upload(data, name, self.max_pixels)
            pipeline = self.pipeline()
            result = pipeline.annotate(image)
            crops = pipeline.crops(image, result)
        except (ValueError, OSError, ImportError, RuntimeError) as err:
            self.show_error(str(err))
            return None
        except Exception as err:  # noqa: BLE001 - an app callback must never die on one bad upload
            self.show_error(f"unexpected error ({type(err).__name__}: {err})")
            return None
        self.show_result(name, image, result, crops)
        return result

    def show_result(self, name: str, image: Image.Image, result: FrameResult, crops: list[Image.Image]) -> None:
        self.image.value = _jpeg_bytes(draw(image, result))
        self.image.width = str(min(result.width, 800))  # natural size, capped: a small photo isn't blown up
        self.image.layout.display = None
        if result.faces:
            self._set_status(f'<span class="fp-ok">{html.escape(name)}: {html.escape(result.summary())}</span>')
        else:
            self._set_status(f'<span class="fp-message" style="color:#b35900">{html.escape(name)}: '
                             f'no face found in this photo | detect {result.detect_ms:.1f} ms</span>')
        self.faces.value = "".join(face_card(i, f, c) for i, (f, c) in enumerate(zip(result.faces, crops)))

    def show_error(self, message: str) -> None:
        """One line in red in place of the result; the widgets stay live for the next upload."""
        self.image.layout.display = "none"
        self.faces.value = ""
        self._set_status(f'<span class="fp-error" style="color:#c00000">Could not process this file: '
                         f'{html.escape(message)}</span>')

    def _set_status(self, text: str) -> None:
        self.status.value = text

    @property
    def message(self) -> str:
        """The status line as plain text (what the user reads)."""
        import re

        return html.unescape(re.sub(r"<[^>]+>", "", self.status.value))


def build_app(backbone: str | None = None, runs_dir: str | os.PathLike | None = "runs",
              detector: str | None = None, **options) -> DemoApp:
    """The demo app; display it (or ``.widget``) in a notebook. Defaults: the embedded backbone with its
    shipped tuned run (zero-shot where none ships)."""
    return DemoApp(backbone=backbone, runs_dir=runs_dir, detector=detector, **options)


# --- Voila ----------------------------------------------------------------------------------------------

def write_notebook(path: str | os.PathLike, **app_kwargs) -> Path:
    """Write a one-cell notebook that shows ``build_app(**app_kwargs)``: what Voila serves."""
    import nbformat

    args = ", ".join(f"{k}={v!r}" for k, v in app_kwargs.items() if v is not None)
    cell = nbformat.v4.new_code_cell(f"from faceprompt.demo.app import build_app\n\nbuild_app({args})")
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# faceprompt: faces, gender, age and emotion\n"
                                      "Upload a photo; every face found is boxed and labelled."),
        cell,
    ])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))
    return path


def voila_command(notebook: str | os.PathLike, port: int) -> list[str]:
    """The Voila command line: local interface only, no browser, no tracebacks sent to the page."""
    return [sys.executable, "-m", "voila", str(notebook), f"--port={port}", "--no-browser",
            "--Voila.ip=127.0.0.1", "--show_tracebacks=False"]


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """Refuse a port something already listens on (Voila would quietly move to the next one, and the address
    printed would not be the one serving)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            raise ValueError(f"--port {port}: already in use on {host}; choose another port") from None


def serve(port: int = 8866, backbone: str | None = None, runs_dir: str | os.PathLike | None = "runs",
          detector: str | None = None) -> int:
    """Serve the app with Voila at http://127.0.0.1:PORT until Ctrl-C; returns Voila's exit code."""
    runs = str(Path(runs_dir).resolve()) if runs_dir else None
    check_port_free(port)
    with tempfile.TemporaryDirectory(prefix="faceprompt-demo-") as tmp:
        notebook = write_notebook(Path(tmp) / "faceprompt_demo.ipynb", backbone=backbone, runs_dir=runs,
                                  detector=detector)
        print(f"serving the demo at http://127.0.0.1:{port}/ (Ctrl-C stops)", file=sys.stderr)
        process = subprocess.Popen(voila_command(notebook, port))
        # A SIGTERM to this process must stop Voila too, not orphan it: turn it into SystemExit.
        previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            return process.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            signal.signal(signal.SIGTERM, previous)
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()


if __name__ == "__main__":  # python -m faceprompt.demo.app NOTEBOOK: write the Voila notebook only
    if len(sys.argv) != 2:
        sys.exit("usage: python -m faceprompt.demo.app NOTEBOOK.ipynb")
    print(write_notebook(sys.argv[1]))
