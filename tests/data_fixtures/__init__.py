"""Small datasets written in each published layout, bad image files, and the shared-data locator.

Test modules import this with ``sys.path`` pointing at ``tests/`` (see ``import_fixtures`` use in the
tests); nothing here copies real data: images are drawn synthetic faces.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceprompt.data.synthetic_faces import FaceSpec, draw_face
from faceprompt.locations import shared_data_root

REPO = Path(__file__).resolve().parents[2]


def shared_data(*parts: str) -> Path:
    """A path inside the shared real data, or pytest.skip with the reason when it isn't there."""
    path = shared_data_root(REPO).joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data {path} is absent (set FACEPROMPT_SHARED_DATA to run this test)")
    return path


def face(path: Path, seed: int = 0, size: int = 96, fmt: str = "JPEG", spec: FaceSpec | None = None) -> Path:
    """Write a drawn face image at ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = spec or FaceSpec("female", 30, "30-39", "happiness")
    draw_face(spec, size, np.random.default_rng(seed)).save(path, format=fmt)
    return path


# ----------------------------------------------------------------------------------------- bad images

def jpeg_bytes(size=(64, 48), colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def write_bad_images(folder: Path) -> dict[str, Path]:
    """One file per awkward case; the name says which."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files["corrupt"] = folder / "corrupt.jpg"
    files["corrupt"].write_bytes(b"this is not an image at all" * 10)
    files["truncated"] = folder / "truncated.jpg"
    full = io.BytesIO()
    draw_face(FaceSpec("male", 30, "30-39", "neutral"), 96).save(full, format="JPEG")
    files["truncated"].write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    files["grayscale"] = folder / "grayscale.jpg"
    Image.new("L", (40, 30), 128).save(files["grayscale"])
    files["cmyk"] = folder / "cmyk.jpg"
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(files["cmyk"])  # pure red in CMYK
    files["rgba"] = folder / "rgba.png"
    rgba = Image.new("RGBA", (40, 30), (0, 0, 255, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 20, 30))  # left half fully transparent
    rgba.save(files["rgba"])
    files["gray16"] = folder / "gray16.png"
    cv2.imwrite(str(files["gray16"]), np.full((30, 40), 65535 // 2, np.uint16))
    files["rgb16"] = folder / "rgb16.png"
    rgb16 = np.zeros((30, 40, 3), np.uint16)
    rgb16[..., 2] = 65535  # cv2 is BGR: this is full red
    cv2.imwrite(str(files["rgb16"]), rgb16)
    files["exif_rotated"] = folder / "exif_rotated.jpg"
    img = Image.new("RGB", (60, 30), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 30))  # white stripe on the stored image's left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    img.save(files["exif_rotated"], exif=exif)
    return files


# ------------------------------------------------------------------------------------ dataset layouts

def write_utkface(root: Path, names: list[str]) -> Path:
    for i, name in enumerate(names):
        face(root / name, seed=i, size=64)
    return root


def write_lfw(root: Path, male: list[str], female: list[str], images: list[str] | None = None) -> Path:
    (root / "male_names.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "male_names.txt").write_text("\n".join(male) + "\n")
    (root / "female_names.txt").write_text("\n".join(female) + "\n")
    for i, name in enumerate(images if images is not None else male + female):
        person = name.rsplit("_", 1)[0]
        face(root / "lfw" / person / name, seed=i, size=250)
    return root


def write_rafdb(root: Path, lines: list[str], images: list[str]) -> Path:
    label = root / "basic" / "EmoLabel" / "list_patition_label.txt"
    label.parent.mkdir(parents=True, exist_ok=True)
    label.write_text("\n".join(lines) + "\n")
    for i, name in enumerate(images):
        face(root / "basic" / "Image" / "aligned" / name.replace(".jpg", "_aligned.jpg"), seed=i, size=100)
    return root / "basic"


def write_celebahq(root: Path, males: list[int], images: int | None = None, extra_lines: list[str] = (),
                   declared: int | None = None) -> Path:
    """``males[i]`` is the Male value (+1/-1) of image ``i.jpg``; other attributes random +-1."""
    names = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Male", "Young"]
    rng = np.random.default_rng(0)
    lines = [str(declared if declared is not None else len(males) + len(extra_lines)), " ".join(names)]
    for i, male in enumerate(males):
        values = [int(rng.choice([-1, 1])), int(rng.choice([-1, 1])), male, 1]
        lines.append(f"{i}.jpg  " + " ".join(f"{v:2d}" for v in values))  # runs of spaces, as published
    lines.extend(extra_lines)
    root.mkdir(parents=True, exist_ok=True)
    (root / "CelebAMask-HQ-attribute-anno.txt").write_text("\n".join(lines) + "\n")
    for i in range(len(males) if images is None else images):
        face(root / "CelebA-HQ-img" / f"{i}.jpg", seed=i, size=128)
    return root


def write_vggface2(root: Path, meta_rows: list[str], images: dict[str, list[str]], ages: list[str] | None = None,
                   folder: str = "test") -> tuple[Path, Path | None]:
    root.mkdir(parents=True, exist_ok=True)
    header = "Class_ID, Name, Sample_Num, Flag, Gender"
    (root / "identity_meta.csv").write_text("\n".join([header, *meta_rows]) + "\n")
    for identity, files in images.items():
        for i, name in enumerate(files):
            face(root / folder / identity / name, seed=i, size=96)
    age_file = None
    if ages is not None:
        age_file = root.parent / "vgg_ages.csv"
        age_file.write_text("\n".join(["path,age", *ages]) + "\n")
    return root, age_file


FAIRFACE_HEADER = "file,age,gender,race,service_test"


def write_fairface(root: Path, train: list[str], val: list[str], images: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for file_name, rows in (("fairface_label_train.csv", train), ("fairface_label_val.csv", val)):
        (root / file_name).write_text("\n".join([FAIRFACE_HEADER, *rows]) + "\n")
        if images:
            for i, row in enumerate(rows):
                path = row.split(",")[0]
                if path:
                    face(root / path, seed=i, size=96)
    return root


def write_facial_expressions(root: Path, legend: list[str], images: list[str]) -> Path:
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "legend.csv").write_text("\n".join(["user.id,image,emotion", *legend]) + "\n")
    for i, name in enumerate(images):
        face(data / "images" / name, seed=i, size=128)
    return root


def write_ferplus(root: Path, splits: dict[str, list[str]], missing: tuple[str, ...] = ()) -> Path:
    """FERPlus's layout: ``FER2013<Split>/label.csv`` (no header; name, box, ten vote counts) and 48x48 PNGs.

    ``splits`` maps a folder suffix (Train/Valid/Test) to label lines; images named in ``missing`` are withheld.
    """
    for split, lines in splits.items():
        folder = root / f"FER2013{split}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "label.csv").write_text("\n".join(lines) + "\n")
        for i, line in enumerate(lines):
            name = line.split(",", 1)[0]
            if name and name not in missing:
                face(folder / name, seed=i, size=48, fmt="PNG")
    return root


LAGENDA_HEADER = ("img_name,age,gender,face_x0,face_y0,face_x1,face_y1,person_x0,person_y0,person_x1,person_y1")


def write_lagenda(root: Path, lines: list[str], missing: tuple[str, ...] = (), size: int = 160) -> Path:
    """LAGENDA's layout: ``lagenda_annotation.csv`` (one line per person) beside ``lag_benchmark/`` photos.

    Every photo named on a line is drawn ``size`` pixels square, except those named in ``missing``.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "lagenda_annotation.csv").write_text("\n".join([LAGENDA_HEADER, *lines]) + "\n")
    names = dict.fromkeys(line.split(",", 1)[0] for line in lines)
    for i, name in enumerate(names):
        if name and name not in missing:
            face(root / name, seed=i, size=size)
    return root
