"""What the demo reads and writes: image files, folders of them, video files and webcams.

Images go through ``load_rgb`` (EXIF rotation, any mode to RGB, a pixel limit); videos and webcams
through OpenCV, whose frames are BGR and are turned into RGB here, once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from faceprompt.data.images import DEFAULT_MAX_PIXELS, ImageLoadError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


class VideoReadError(ValueError):
    """A video file or webcam that OpenCV cannot open or decode."""


def input_kind(path: str | os.PathLike) -> str:
    """'folder', 'video' (by suffix) or 'image' (anything else: load_rgb says clearly if it is not one)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        return "folder"
    return "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"


def folder_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (other files are ignored)."""
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


@dataclass
class VideoInfo:
    source: str  # the file path, or "webcam N"
    width: int
    height: int
    fps: float


def _cv2():
    import cv2

    return cv2


def open_video(source: str | os.PathLike | int, max_pixels: int | None = DEFAULT_MAX_PIXELS):
    """An opened ``cv2.VideoCapture`` and its size and frame rate, or VideoReadError."""
    cv2 = _cv2()
    what = f"webcam {source}" if isinstance(source, int) else str(source)
    if not isinstance(source, int) and not Path(source).is_file():
        raise FileNotFoundError(f"{source}: no such video file")
    capture = cv2.VideoCapture(source if isinstance(source, int) else str(source))
    if not capture.isOpened():
        capture.release()
        raise VideoReadError(f"{what}: cannot open video (not a video, or a codec OpenCV lacks)")
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if max_pixels is not None and width * height > max_pixels:
        capture.release()
        raise ImageLoadError(f"{what}: {width}x{height} frames exceed the limit of {max_pixels:,} pixels")
    fps = capture.get(cv2.CAP_PROP_FPS)
    # Webcams and some containers report 0 fps; 25 keeps the written video playable.
    return capture, VideoInfo(what, width, height, fps if 1 <= fps <= 240 else 25.0)


def iter_frames(capture, what: str, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """RGB frames of an opened capture; VideoReadError when not even the first frame decodes."""
    cv2 = _cv2()
    count = 0
    try:
        while max_frames is None or count < max_frames:
            ok, bgr = capture.read()
            if not ok or bgr is None:
                break
            count += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
    if count == 0:
        raise VideoReadError(f"{what}: no frame could be decoded (empty, truncated or not a video)")


class VideoWriter:
    """Writes RGB frames to an MP4 (mp4v codec: in every OpenCV build, no external encoder needed)."""

    def __init__(self, path: str | os.PathLike, info: VideoInfo):
        cv2 = _cv2()
        self.path = Path(path)
        self._cv2 = cv2
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), info.fps,
                                       (info.width, info.height))
        if not self._writer.isOpened():
            raise VideoReadError(f"{self.path}: OpenCV cannot write an mp4v video here")

    def write(self, rgb: np.ndarray) -> None:
        self._writer.write(self._cv2.cvtColor(np.asarray(rgb), self._cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        self._writer.release()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LatestFrame:
    """A live source read on its own thread, keeping only the newest frame: a frame that arrives while another
    is being labelled replaces the waiting one (counted in ``dropped``) instead of queueing, so the output
    stays live when labelling is slower than the camera. Iterate to get the frames that were kept."""

    def __init__(self, frames: Iterator[np.ndarray]):
        import threading

        self._ready = threading.Condition()
        self._frame: np.ndarray | None = None
        self._finished = False
        self._error: BaseException | None = None
        self.read = 0
        self.dropped = 0
        threading.Thread(target=self._pull, args=(frames,), daemon=True).start()

    def _pull(self, frames: Iterator[np.ndarray]) -> None:
        try:
            for frame in frames:
                with self._ready:
                    self.dropped += self._frame is not None
                    self._frame, self.read = frame, self.read + 1
                    self._ready.notify()
        except BaseException as err:  # handed to the consumer, which raises it
            self._error = err
        finally:
            with self._ready:
                self._finished = True
                self._ready.notify()

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            with self._ready:
                while self._frame is None and not self._finished:
                    self._ready.wait()
                if self._frame is None:
                    if self._error is not None:
                        raise self._error
                    return
                frame, self._frame = self._frame, None
            yield frame
