"""A live source keeps up: frames that arrive while one is labelled are dropped, not queued."""
from __future__ import annotations

import json
import time

import numpy as np

from faceprompt.demo.media import LatestFrame


def camera(frames: int, every_s: float):
    """A stand-in webcam: numbered frames at a fixed rate (the number is in the first pixel)."""
    for i in range(frames):
        time.sleep(every_s)
        yield np.full((8, 8, 3), i % 256, dtype=np.uint8)


def test_a_slow_consumer_gets_the_newest_frames_and_the_rest_are_dropped():
    source = LatestFrame(camera(60, 0.005))
    seen = []
    for frame in source:
        seen.append(int(frame[0, 0, 0]))
        time.sleep(0.03)  # labelling is six times slower than the camera
    assert seen == sorted(seen) and len(seen) < 60
    assert source.read == 60 and source.dropped == 60 - len(seen)
    assert seen[-1] == 59  # the last frame is never lost


def test_an_error_of_the_source_reaches_the_consumer():
    def broken():
        yield np.zeros((8, 8, 3), dtype=np.uint8)
        raise OSError("camera unplugged")

    source = LatestFrame(broken())
    got = []
    try:
        for frame in source:
            got.append(frame)
            time.sleep(0.01)
    except OSError as err:
        assert "unplugged" in str(err)
    else:
        raise AssertionError("the source's error was swallowed")


def test_the_webcam_path_writes_its_frame_rate_and_drops(tmp_path, monkeypatch):
    from faceprompt.commands import demo as cli

    class SlowPipeline:
        classifier = type("C", (), {"describe": staticmethod(lambda: {"method": "stand-in"})})()

        def annotate_frames(self, frames):
            time.sleep(0.03)
            from faceprompt.demo.pipeline import FrameResult

            return [FrameResult(8, 8, [], 1.0, 0.0, 0, [], 0, 0.0) for _ in frames]

    written = []

    class Writer:
        def __init__(self, *a):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def write(self, frame):
            written.append(frame)

        def close(self):
            pass

    info = type("Info", (), {"source": "webcam 0", "fps": 30.0})()
    monkeypatch.setattr(cli, "iter_frames", lambda capture, what, max_frames: camera(40, 0.005))
    monkeypatch.setattr(cli, "VideoWriter", Writer)
    results = cli.annotate_video(SlowPipeline(), (None, info), "webcam0", tmp_path, True, live=True)
    record = json.loads((tmp_path / "webcam0.json").read_text())
    assert record["frames_read"] == 40 and record["frames_dropped"] == 40 - len(results) > 0
    assert record["labelled_fps"] > 0 and len(written) == len(results)
