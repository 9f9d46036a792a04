"""Adapters on the real shared data: counts and label distributions of the published label files."""
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from data_fixtures import shared_data  # noqa: E402

from faceprompt.data.adapters import get_adapter  # noqa: E402
from faceprompt.data.adapters.celebahq import read_attributes  # noqa: E402
from faceprompt.data.adapters.lfw import read_gender_lists  # noqa: E402
from faceprompt.data.manifest import read_manifest  # noqa: E402
from faceprompt.data.prepare import _reason_kind, prepare_dataset  # noqa: E402

pytestmark = pytest.mark.shared_data


def test_utkface_all_names():
    result = get_adapter("utkface").scan(shared_data("UTKFace"))
    assert len(result.rows) == 21351 and not result.skipped
    assert Counter(r["gender"] for r in result.rows) == {"male": 11145, "female": 10206}
    races = Counter(r["race"] for r in result.rows)
    assert races == {"White": 9074, "Black": 4089, "Indian": 3578, "Asian": 3092, "Others": 1515, "": 3}
    bins = Counter(r["age_bin"] for r in result.rows)
    assert bins["20-29"] == 6642 and bins["0-2"] == 1442 and bins["70+"] == 1239 and sum(bins.values()) == 21351
    assert "3 UTKFace file name(s) lack the race field" in result.warnings[0]


def test_facial_expressions_legend_and_withheld_images():
    result = get_adapter("facial_expressions").scan(shared_data("facial_expressions"))
    kinds = Counter(_reason_kind(s.reason) for s in result.skipped)
    assert kinds == {"missing image file": 1392, "duplicate row": 7, "conflicting labels": 1}
    # 13,690 legend lines = rows kept + withheld + duplicates + the two lines of the conflicting image.
    assert len(result.rows) + 1392 + 7 + 2 == 13690
    emotions = Counter(r["emotion"] for r in result.rows)
    assert emotions == {"neutral": 6157, "happiness": 5116, "surprise": 330, "sadness": 246, "anger": 231,
                        "disgust": 182, "fear": 19, "": 8}  # "": contempt rows kept for their gender
    genders = Counter(r["gender"] for r in result.rows)
    assert genders == {"male": 8883, "female": 2567, "": 839}
    assert all(r["identity"] for r in result.rows)


def test_lfw_gender_lists():
    lists = read_gender_lists(shared_data("LFW"))
    assert len(lists.by_file) + 2 * len(lists.conflicts) == 10268 + 2966
    assert len(lists.conflicts) == 5 and "Claudia_Coslovich_0001.jpg" in lists.conflicts
    assert Counter(lists.by_file.values()) == {"male": 10268 - 5, "female": 2966 - 5}
    assert lists.gender("George_W_Bush_0001.jpg")[0] == "male"
    assert lists.gender("Claudia_Coslovich_0001.jpg")[0] == ""


def test_celeba_attribute_file():
    table = read_attributes(shared_data("CelebA", "list_attr_celeba.txt"))
    assert len(table.names) == 40 and len(table.rows) == 20000 and not table.skipped
    assert sum(attrs["Male"] == 1 for _, _, attrs in table.rows) == 8431
    assert table.rows[0][1] == "000001.jpg" and table.rows[0][0] == 3
    assert "declares 202599" in table.warnings[0]  # header of the full file over its first 20,000 rows


def test_celeba_adapter_without_images_reports_every_row(tmp_path):
    # The attribute file alone: every row names a missing image, none crashes the scan.
    (tmp_path / "list_attr_celeba.txt").symlink_to(shared_data("CelebA", "list_attr_celeba.txt"))
    result = get_adapter("celebahq").scan(tmp_path)
    assert not result.rows and len(result.skipped) == 20000
    assert all("missing image file" in s.reason for s in result.skipped)


@pytest.mark.parametrize("name, folder", [("utkface", "UTKFace"), ("facial_expressions", "facial_expressions")])
def test_prepare_subset_with_detection(tmp_path, name, folder):
    report = prepare_dataset(name, shared_data(folder), tmp_path, limit=40, detect=True, size=64, workers=2,
                             progress=False)
    frame = read_manifest(report.manifest)
    assert report.rows == len(frame) == 40
    assert report.crops["face"] >= 34  # the default detector finds ~96% of these faces
    assert report.crops["face"] + report.crops["no_face"] == 40


def test_ferplus_majority_labels_on_the_official_splits():
    """FER+'s label files under its majority rule; withheld images, unknown, NF and contempt counted apart."""
    result = get_adapter("ferplus").scan(shared_data("FERPlus"))
    by_split = Counter(r["split"] for r in result.rows)
    assert by_split == {"train": 22411, "val": 2894, "test": 2821}
    test = Counter(r["emotion"] for r in result.rows if r["split"] == "test")
    assert test == {"neutral": 987, "happiness": 803, "surprise": 346, "sadness": 350, "anger": 240,
                    "fear": 79, "disgust": 16}
    assert result.warnings == ["not used: 2 NF, 151 contempt, 3096 missing image, 4335 unknown"]
    assert len(result.rows) + 2 + 151 + 3096 + 4335 == 28558 + 3579 + 3573  # every label line accounted for
