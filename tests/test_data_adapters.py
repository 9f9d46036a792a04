"""Each adapter on a small fixture written in its published layout, bad label lines included."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from data_fixtures import (face, write_celebahq, write_facial_expressions, write_fairface, write_ferplus,  # noqa: E402
                           write_lagenda, write_lfw, write_rafdb, write_utkface, write_vggface2)

from faceprompt.data.adapters import ADAPTERS, get_adapter  # noqa: E402
from faceprompt.data.adapters.fairface import parse_age  # noqa: E402
from faceprompt.data.adapters.utkface import parse_name  # noqa: E402


def _reasons(result):
    return [str(s) for s in result.skipped]


def _by_name(result):
    return {Path(r["path"]).name: r for r in result.rows}


def test_registry_has_every_dataset():
    assert set(ADAPTERS) == {"celebahq", "lfw", "rafdb", "vggface2", "utkface", "fairface", "lagenda",
                             "facial_expressions", "ferplus", "synthetic"}
    for name in ADAPTERS:
        module = get_adapter(name)
        assert module.NAME == name and isinstance(module.DETECT_BY_DEFAULT, bool)
    with pytest.raises(ValueError, match="unknown dataset"):
        get_adapter("imagenet")


def test_utkface_names(tmp_path):
    root = write_utkface(tmp_path, [
        "25_0_2_20170116174525125.jpg.chip.jpg",
        "61_1_20170109150557335.jpg.chip.jpg",  # race missing, as in the published set
        "55_0_0_20170116232725357jpg.chip.jpg",  # missing dot, as published
        "3_7_0_20170116174525125.jpg.chip.jpg",  # unknown gender value
        "30_1_9_20170116174525125.jpg.chip.jpg",  # unknown race value
        "notalabel.jpg",
    ])
    result = get_adapter("utkface").scan(root)
    rows = _by_name(result)
    assert len(rows) == 3 and len(result.skipped) == 3
    first = rows["25_0_2_20170116174525125.jpg.chip.jpg"]
    assert (first["age"], first["age_bin"], first["gender"], first["race"]) == ("25", "20-29", "male", "Asian")
    assert rows["61_1_20170109150557335.jpg.chip.jpg"]["race"] == ""
    assert rows["61_1_20170109150557335.jpg.chip.jpg"]["age_bin"] == "60-69"
    reasons = " ".join(_reasons(result))
    assert "unknown gender value '7'" in reasons and "unknown race value '9'" in reasons
    assert "notalabel.jpg" in reasons
    assert all(r["emotion"] == "" and r["source"] == "file name" for r in result.rows)
    with pytest.raises(ValueError):
        parse_name("200_0_0_20170116174525125.jpg")  # beyond UTKFace's 0-116


def test_rafdb_official_splits_and_bad_lines(tmp_path):
    images = ["train_00001.jpg", "train_00002.jpg", "test_0001.jpg"]
    root = write_rafdb(tmp_path, [
        "train_00001.jpg 5", "train_00002.jpg 4", "test_0001.jpg 1",
        "train_00003.jpg 7",  # image missing
        "train_00004.jpg 9",  # unknown label
        "train_00005.jpg",  # malformed
        "other_1.jpg 3",
    ], images)
    result = get_adapter("rafdb").scan(tmp_path)
    rows = _by_name(result)
    assert {n: (r["emotion"], r["split"]) for n, r in rows.items()} == {
        "train_00001_aligned.jpg": ("sadness", ""), "train_00002_aligned.jpg": ("happiness", ""),
        "test_0001_aligned.jpg": ("surprise", "test")}
    reasons = _reasons(result)
    assert len(reasons) == 4
    assert any("list_patition_label.txt:5: unknown emotion label '9'" in r for r in reasons)
    assert any("list_patition_label.txt:6: malformed line" in r for r in reasons)
    assert any("train_00003_aligned.jpg" in r and "missing image" in r for r in reasons)
    assert rows["test_0001_aligned.jpg"]["source"] == "list_patition_label.txt:3"
    assert root.name == "basic"


def test_celebahq_male_attribute(tmp_path):
    root = write_celebahq(tmp_path, [1, -1, -1, 1], images=3, extra_lines=["4.jpg 1 1", "5.jpg 1 0 1 1"])
    result = get_adapter("celebahq").scan(root)
    assert [r["gender"] for r in result.rows] == ["male", "female", "female"]
    reasons = " ".join(_reasons(result))
    assert "3.jpg: missing image" in reasons  # named by the label file, not on disk
    assert ":7: 2 values, expected 4" in reasons and ":8: attribute value '0'" in reasons
    assert all(r["split"] == "" and "Male" in r["source"] for r in result.rows)


def test_celebahq_count_mismatch_warns(tmp_path):
    root = write_celebahq(tmp_path, [1, -1], declared=202599)
    result = get_adapter("celebahq").scan(root)
    assert len(result.rows) == 2 and "declares 202599" in result.warnings[0]


def test_lfw_lists_and_conflicts(tmp_path):
    male = ["John_Doe_0001.jpg", "John_Doe_0002.jpg", "Both_Lists_0001.jpg", "Missing_Man_0001.jpg", "bad entry"]
    female = ["Jane_Roe_0001.jpg", "Both_Lists_0001.jpg"]
    images = ["John_Doe_0001.jpg", "John_Doe_0002.jpg", "Both_Lists_0001.jpg", "Jane_Roe_0001.jpg",
              "Nobody_Listed_0001.jpg"]
    write_lfw(tmp_path, male, female, images)
    result = get_adapter("lfw").scan(tmp_path)
    rows = _by_name(result)
    assert {n: (r["gender"], r["identity"]) for n, r in rows.items()} == {
        "John_Doe_0001.jpg": ("male", "John_Doe"), "John_Doe_0002.jpg": ("male", "John_Doe"),
        "Jane_Roe_0001.jpg": ("female", "Jane_Roe")}
    reasons = " ".join(_reasons(result))
    assert "Both_Lists_0001.jpg: listed in both" in reasons
    assert "Missing_Man_0001.jpg: missing image" in reasons
    assert "malformed entry 'bad entry'" in reasons and "male_names.txt:5" in reasons
    assert "Nobody_Listed_0001.jpg: image is in neither gender list" in reasons


def test_vggface2_gender_per_identity_and_ages(tmp_path):
    meta = ['n000001, "14th_Dalai_Lama",424,0, m', 'n000002, "Jane",300,0, f', 'n000003, "X",1,0, x',
            'n000004, "short"']
    images = {"n000001": ["0001_01.jpg", "0002_01.jpg"], "n000002": ["0001_01.jpg"], "n000003": ["0001_01.jpg"],
              "n000009": ["0001_01.jpg"]}
    ages = ["test/n000001/0001_01.jpg,34", "n000002/0001_01.jpg,71.0", "n000001/0002_01.jpg,abc",
            "n000009/0001_01.jpg,8", "n000404/0001_01.jpg,50"]
    root, age_file = write_vggface2(tmp_path / "vgg", meta, images, ages)
    result = get_adapter("vggface2").scan(root, ages=age_file)
    rows = {"/".join(Path(r["path"]).parts[-2:]): r for r in result.rows}
    assert rows["n000001/0001_01.jpg"]["gender"] == "male" and rows["n000001/0001_01.jpg"]["age_bin"] == "30-39"
    assert rows["n000001/0002_01.jpg"]["age"] == ""  # bad age value: skipped, gender kept
    assert rows["n000002/0001_01.jpg"]["age"] == "71" and rows["n000002/0001_01.jpg"]["age_bin"] == "70+"
    assert rows["n000009/0001_01.jpg"]["gender"] == "" and rows["n000009/0001_01.jpg"]["age"] == "8"
    assert "n000003/0001_01.jpg" not in rows  # unknown gender 'x' and no age
    assert all(r["split"] == "test" and r["identity"] for r in result.rows)
    reasons = " ".join(_reasons(result))
    assert "unknown gender value 'x'" in reasons and "identity_meta.csv:5: 2 fields" in reasons
    assert "age 'abc' is not a number" in reasons
    assert any("1 age(s)" in w for w in result.warnings)


FAIRFACE_TRAIN = ["train/1.jpg,50-59,Male,East Asian,True", "train/2.jpg,more than 70,Female,Indian,False",
                  "train/3.jpg,3-9,Female,White,True"]
FAIRFACE_VAL = ["val/1.jpg,0-2,Male,Black,False", "val/2.jpg,20-29,Female,Latino_Hispanic,True"]


def test_fairface_published(tmp_path):
    result = get_adapter("fairface").scan(write_fairface(tmp_path, FAIRFACE_TRAIN, FAIRFACE_VAL))
    rows = {"/".join(Path(r["path"]).parts[-2:]): r for r in result.rows}
    assert len(rows) == 5 and not result.skipped and not result.warnings
    assert rows["train/2.jpg"]["age_bin"] == "70+" and rows["train/2.jpg"]["race"] == "Indian"
    assert rows["train/2.jpg"]["age"] == ""  # FairFace gives bins, never raw ages
    assert rows["val/1.jpg"]["split"] == "test" and rows["train/1.jpg"]["split"] == ""
    assert rows["val/2.jpg"]["gender"] == "female"


def test_fairface_spreadsheet_dates_are_repaired_with_warning(tmp_path):
    train = ["train/1.jpg,9-Mar,Male,White,TRUE", "train/2.jpg,Oct-19,Female,Black,FALSE",
             "train/3.jpg,20-29,Male,Indian,FALSE", "train/4.jpg,Feb-99,Male,Indian,FALSE",
             "train/5.jpg,30-39,Robot,Indian,FALSE", "train/6.jpg,30-39,Male,Martian,FALSE",
             "train/7.jpg,40-49,Male,White,TRUE"]
    root = write_fairface(tmp_path, train, FAIRFACE_VAL)
    (root / "train" / "7.jpg").unlink()
    # Spreadsheets also prepend a byte-order mark.
    path = root / "fairface_label_train.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    result = get_adapter("fairface").scan(root)
    rows = {"/".join(Path(r["path"]).parts[-2:]): r for r in result.rows}
    assert rows["train/1.jpg"]["age_bin"] == "3-9" and rows["train/2.jpg"]["age_bin"] == "10-19"
    assert any("repaired 2 age value(s)" in w and "'9-Mar' -> '3-9'" in w for w in result.warnings)
    assert any("TRUE/FALSE" in w for w in result.warnings)
    reasons = " ".join(_reasons(result))
    assert "fairface_label_train.csv:5: unknown age value 'Feb-99'" in reasons
    assert ":6: unknown gender value 'Robot'" in reasons and ":7: unknown race value 'Martian'" in reasons
    assert "7.jpg: missing image file" in reasons


def test_fairface_repairs_are_unambiguous():
    assert parse_age("3-Sep") == ("3-9", True) and parse_age("19-Oct") == ("10-19", True)
    assert parse_age("more than 70") == ("70+", False)
    with pytest.raises(ValueError, match="unknown age value"):
        parse_age("70-79")


def test_fairface_missing_columns_refused(tmp_path):
    (tmp_path / "fairface_label_train.csv").write_text("file,age\ntrain/1.jpg,3-9\n")
    with pytest.raises(ValueError, match=r"fairface_label_train.csv: line 1 lacks column\(s\) \['gender', 'race'\]"):
        get_adapter("fairface").scan(tmp_path)


def test_facial_expressions_legend(tmp_path):
    legend = ["628,facial-expressions_2868588k.jpg,anger", "dwdii,Tony_Blair_0001.jpg,HAPPINESS",
              "dwdii,Tony_Blair_0002.jpg,contempt", "dwdii,Jane_Roe_0001.jpg,Neutral",
              "JN721,Jane_Roe_0001.jpg,neutral", "jhamski,Avinash_30.jpg,SURPRISE",
              "jhamski,Avinash_30.jpg,SADNESS", "dwdii,Withheld_Person_0001.jpg,fear",
              "dwdii,Tony_Blair_0003.jpg,boredom", "dwdii,no_comma_here", "x,Unknown_Person_0001.jpg,contempt",
              "x,Both_Lists_0001.jpg,sadness"]
    images = ["facial-expressions_2868588k.jpg", "Tony_Blair_0001.jpg", "Tony_Blair_0002.jpg", "Jane_Roe_0001.jpg",
              "Avinash_30.jpg", "Tony_Blair_0003.jpg", "Unknown_Person_0001.jpg", "Both_Lists_0001.jpg"]
    root = write_facial_expressions(tmp_path / "facial_expressions", legend, images)
    lfw = tmp_path / "LFW"  # a sibling folder, found without being told
    lfw.mkdir()
    (lfw / "male_names.txt").write_text("Tony_Blair_0001.jpg\nBoth_Lists_0001.jpg\n")
    (lfw / "female_names.txt").write_text("Jane_Roe_0002.jpg\nBoth_Lists_0001.jpg\n")
    result = get_adapter("facial_expressions").scan(root)
    rows = _by_name(result)
    assert {n: (r["emotion"], r["gender"]) for n, r in rows.items()} == {
        "facial-expressions_2868588k.jpg": ("anger", ""),
        "Tony_Blair_0001.jpg": ("happiness", "male"),
        "Tony_Blair_0002.jpg": ("", "male"),  # contempt: no RAF-DB class; gender from the same person
        "Jane_Roe_0001.jpg": ("neutral", "female"),  # duplicate line, same label after lower-casing
        "Both_Lists_0001.jpg": ("sadness", ""),  # in both LFW lists: gender unknown, not guessed
    }
    assert rows["Tony_Blair_0002.jpg"]["identity"] == "Tony_Blair"
    assert "same person" in rows["Tony_Blair_0002.jpg"]["source"]
    reasons = " ".join(_reasons(result))
    for expected in ("conflicting labels (Avinash_30.jpg", "duplicate row", "Withheld_Person_0001.jpg: missing image",
                     ":10: unknown emotion label 'boredom'", ":11: malformed line",
                     ":12: no RAF-DB class and no gender ('contempt'"):
        assert expected in reasons, expected
    assert len(result.skipped) == 6


def test_facial_expressions_without_lfw_lists_warns(tmp_path):
    root = write_facial_expressions(tmp_path / "fx", ["1,A_0001.jpg,fear"], ["A_0001.jpg"])
    result = get_adapter("facial_expressions").scan(root)
    assert result.rows[0]["gender"] == "" and "no gender labels" in result.warnings[0]


def test_missing_label_file_is_a_clear_error(tmp_path):
    face(tmp_path / "x.jpg")
    for name in ("rafdb", "celebahq", "fairface", "lfw", "vggface2", "facial_expressions"):
        with pytest.raises(FileNotFoundError, match=name):
            get_adapter(name).scan(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_adapter("utkface").scan(tmp_path / "nowhere")


def test_registering_a_taken_dataset_name_is_refused():
    from faceprompt.data.adapters import list_adapters, register_adapter
    from faceprompt.registry import DuplicateNameError

    before = list_adapters()
    with pytest.raises(DuplicateNameError, match="dataset adapter 'utkface' is already registered"):
        register_adapter("utkface", "somewhere.else")
    assert list_adapters() == before and get_adapter("utkface").NAME == "utkface"


# ------------------------------------------------------------------------------------------------ FER+

@pytest.mark.parametrize("votes, label", [
    ([4, 0, 0, 1, 3, 2, 0, 0, 0, 0], "unknown"),      # 4 of 9 kept votes: no majority
    ([6, 0, 1, 1, 0, 0, 0, 0, 2, 0], "neutral"),      # single votes dropped: 6 of 8
    ([0, 10, 0, 0, 0, 0, 0, 0, 0, 0], "happiness"),
    ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], "unknown"),      # every vote an outlier
    ([0, 0, 0, 0, 0, 0, 0, 0, 0, 9], "NF"),
    ([0, 0, 0, 0, 0, 0, 0, 7, 3, 0], "contempt"),
    ([5, 5, 0, 0, 0, 0, 0, 0, 0, 0], "unknown"),      # a tie is not more than half
])
def test_ferplus_majority_rule(votes, label):
    from faceprompt.data.adapters.ferplus import majority_label

    assert majority_label(votes) == label


def test_ferplus_splits_labels_and_skips(tmp_path):
    box = '"(0, 0, 48, 48)"'
    root = write_ferplus(tmp_path / "FERPlus", {
        "Train": [f"a.png,{box},0,9,0,0,0,0,0,0,1,0", f"b.png,{box},4,0,0,1,3,2,0,0,0,0",
                  f"c.png,{box},0,0,0,0,0,0,0,8,2,0", f"d.png,{box},0,0,0,0,0,0,0,0,0,10",
                  f"e.png,{box},0,0,8,0,0,0,0,0,0,0", "f.png,oops"],
        "Valid": [f"g.png,{box},0,0,0,0,7,0,0,0,0,0"],
        "Test": [f"h.png,{box},2,0,0,0,0,0,6,0,0,0"],
    }, missing=("e.png",))
    result = get_adapter("ferplus").scan(root)
    rows = _by_name(result)
    assert {n: (r["split"], r["emotion"]) for n, r in rows.items()} == {
        "a.png": ("train", "happiness"), "g.png": ("val", "anger"), "h.png": ("test", "fear")}
    assert all(r["gender"] == "" and r["age_bin"] == "" for r in rows.values())
    reasons = sorted(s.reason for s in result.skipped)
    assert any("b.png: no majority" in r for r in reasons) and any("c.png: contempt" in r for r in reasons)
    assert any("d.png: annotators say it is not a face" in r for r in reasons)
    assert any("missing image file" in r for r in reasons) and any("malformed line" in r for r in reasons)
    assert "not used: 1 NF, 1 contempt, 1 missing image, 1 unknown" in result.warnings
    assert next(s for s in result.skipped if "malformed" in s.reason).line == 6


def test_ferplus_without_split_folders_is_one_clear_error(tmp_path):
    (tmp_path / "FERPlus").mkdir()
    with pytest.raises(FileNotFoundError, match="none of FER2013Train"):
        get_adapter("ferplus").scan(tmp_path / "FERPlus")


def test_lagenda_labels_boxes_and_skips(tmp_path):
    person = "5,5,90,150"
    root = write_lagenda(tmp_path / "LAGENDA", [
        f"lag_benchmark/a.jpg,25,M,10,20,50,60,{person}",
        f"lag_benchmark/a.jpg,71,F,60,20,100,70,{person}",    # a second person in the same photo
        f"lag_benchmark/b.jpg,-1,F,0,0,40,40,{person}",       # age unknown: gender kept
        f"lag_benchmark/b.jpg,8.0,-1,40,40,80,80,{person}",   # gender unknown: age kept
        f"lag_benchmark/c.jpg,-1,-1,0,0,40,40,{person}",      # nothing known
        f"lag_benchmark/c.jpg,30,X,0,0,40,40,{person}",       # unknown gender value
        f"lag_benchmark/c.jpg,old,M,0,0,40,40,{person}",      # unknown age value
        f"lag_benchmark/c.jpg,30,M,-1,-1,-1,-1,{person}",     # no face box
        f"lag_benchmark/c.jpg,30,M,50,10,20,40,{person}",     # x1 < x0
        "lag_benchmark/c.jpg,30,M,0,0",                       # cut short
        f"lag_benchmark/gone.jpg,40,F,0,0,40,40,{person}",    # image not there
    ], missing=("lag_benchmark/gone.jpg",))
    result = get_adapter("lagenda").scan(root)
    rows = [(Path(r["path"]).name, r["age"], r["age_bin"], r["gender"], r["box"], r["split"]) for r in result.rows]
    assert rows == [("a.jpg", "25", "20-29", "male", (10, 20, 50, 60), ""),
                    ("a.jpg", "71", "70+", "female", (60, 20, 100, 70), ""),
                    ("b.jpg", "", "", "female", (0, 0, 40, 40), ""),
                    ("b.jpg", "8.0", "3-9", "", (40, 40, 80, 80), "")]
    assert [r["source"] for r in result.rows] == [f"lagenda_annotation.csv:{n}" for n in (2, 3, 4, 5)]
    assert all(r["emotion"] == "" and r["race"] == "" and r["identity"] == "" for r in result.rows)
    skips = {s.line: s.reason for s in result.skipped if s.line is not None}
    assert set(skips) == {6, 7, 8, 9, 10, 11}
    assert "neither age nor gender" in skips[6] and "unknown gender value 'X'" in skips[7]
    assert "unknown age value 'old'" in skips[8] and "no face box" in skips[9]
    assert "malformed face box" in skips[10] and "malformed line" in skips[11]
    assert all(s.file.endswith("lagenda_annotation.csv") for s in result.skipped if s.line is not None)
    missing = [s for s in result.skipped if s.line is None]
    assert len(missing) == 1 and missing[0].file.endswith("gone.jpg")
    assert "missing image file (named at lagenda_annotation.csv:12)" in missing[0].reason


def test_lagenda_missing_columns_refused(tmp_path):
    root = tmp_path / "LAGENDA"
    root.mkdir()
    (root / "lagenda_annotation.csv").write_text("img_name,age,gender\nlag_benchmark/a.jpg,25,M\n")
    with pytest.raises(ValueError, match="lacks column"):
        get_adapter("lagenda").scan(root)
    with pytest.raises(FileNotFoundError, match="lagenda_annotation.csv"):
        get_adapter("lagenda").scan(tmp_path)


def test_rafdb_reads_gender_and_race_from_its_manual_attribute_files(tmp_path):
    images = ["train_00001.jpg", "train_00002.jpg", "test_0001.jpg"]
    basic = write_rafdb(tmp_path, ["train_00001.jpg 5", "train_00002.jpg 4", "test_0001.jpg 1"], images)
    manual = basic / "Annotation" / "manual"
    manual.mkdir(parents=True)
    landmarks = "\n".join(["30.1 40.2", "60.3 40.1", "45.0 55.5", "35.2 70.0", "58.8 70.3"])
    (manual / "train_00001_manu_attri.txt").write_text(f"{landmarks}\n1\n2\n2\n")  # female, Asian
    (manual / "train_00002_manu_attri.txt").write_text(f"{landmarks}\n2\n0\n1\n")  # gender unsure
    rows = _by_name(get_adapter("rafdb").scan(tmp_path))  # test_0001 has no attribute file
    assert {n: (r["gender"], r["race"], r["emotion"]) for n, r in rows.items()} == {
        "train_00001_aligned.jpg": ("female", "Asian", "sadness"),
        "train_00002_aligned.jpg": ("", "Caucasian", "happiness"),
        "test_0001_aligned.jpg": ("", "", "surprise")}
