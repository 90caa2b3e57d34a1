"""In-Shop Clothes Retrieval loader against tiny fixtures in the official layout."""

from __future__ import annotations

import dataclasses
import warnings
from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dml.data import inshop, load_classification_data, load_retrieval_data
from dml.data.checks import warn_if_counts_differ
from dml.data.inshop import load_inshop
from dml.data.records import RetrievalData, Split
from dml.errors import DmlError
from tests.data.fixtures import error_line, make_inshop

# make_inshop's defaults, worked out by hand: items 2, 5, 8, ... alternate train / test;
# train items have 2, 3, 4 images cycled, test items 1, 2, 3 queries and 2, 1, 3 gallery.
TRAIN_COUNTS = {2: 2, 8: 3, 14: 4, 20: 2, 26: 3, 32: 4}
QUERY_COUNTS = {5: 1, 11: 2, 17: 3, 23: 1, 29: 2, 35: 3}
GALLERY_COUNTS = {5: 2, 11: 1, 17: 3, 23: 2, 29: 1, 35: 3}
INSHOP_LINE = "'<image_name> <item_id> <evaluation_status>' lines"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "InShop"
    make_inshop(root)
    return root


def partition(root: Path) -> Path:
    return root / "Eval" / "list_eval_partition.txt"


def load_quietly(root: Path) -> RetrievalData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_inshop(root)


def rel_pairs(root: Path, split: Split) -> list[tuple[str, int]]:
    """(image_name, i.e. the path under Img/, label) of each record."""
    return [(p.relative_to(root / "Img").as_posix(), y) for p, y in zip(split.paths, split.labels)]


def edit_line(path: Path, index: int, line: str) -> None:
    """Replace line `index` (0-based: the count is 0, the header 1) of the partition file."""
    lines = path.read_text().splitlines()
    lines[index] = line
    path.write_text("\n".join(lines) + "\n")


def test_train_query_gallery_as_the_file_says(tmp_path: Path) -> None:
    """Catches query and gallery swapped, test holding query + gallery (or gallery left
    unset), labels numbered by position instead of item id, or paths not under Img/."""
    root = tmp_path / "InShop"
    written = make_inshop(root)
    data = load_quietly(root)
    assert data.gallery is not None
    assert rel_pairs(root, data.train) == written["train"]
    assert rel_pairs(root, data.test) == written["query"]
    assert rel_pairs(root, data.gallery) == written["gallery"]
    assert rel_pairs(root, data.train)[:2] == [
        ("img/WOMEN/Dresses/id_00000002/01_1_front.jpg", 2),
        ("img/WOMEN/Dresses/id_00000002/01_2_side.jpg", 2),
    ]
    assert rel_pairs(root, data.test)[0] == ("img/MEN/Denim/id_00000005/01_1_front.jpg", 5)
    assert rel_pairs(root, data.gallery)[:2] == [
        ("img/MEN/Denim/id_00000005/01_2_side.jpg", 5),
        ("img/MEN/Denim/id_00000005/01_3_back.jpg", 5),
    ]
    assert Counter(data.train.labels) == TRAIN_COUNTS
    assert Counter(data.test.labels) == QUERY_COUNTS
    assert Counter(data.gallery.labels) == GALLERY_COUNTS
    assert all(p.is_file() for s in (data.train, data.test, data.gallery) for p in s.paths)


def test_count_and_header_lines_are_skipped(root: Path) -> None:
    """Catches line 1 (the count) or line 2 (the header) parsed as an image, or the first
    images dropped with them: 42 lines after the header give 18 + 12 + 12 images."""
    lines = partition(root).read_text().splitlines()
    assert lines[:2] == ["42", "image_name item_id evaluation_status"]
    data = load_quietly(root)
    assert (len(data.train), len(data.test), len(data.gallery)) == (18, 12, 12)


@pytest.mark.parametrize("sep", ["  ", "\t", " \t   "])
def test_fields_split_on_any_whitespace(root: Path, sep: str) -> None:
    """Catches line.split(' ') (the official file pads its columns with runs of spaces):
    the same records whatever the separators, leading and trailing whitespace included."""
    expected = load_quietly(root)
    path = partition(root)
    lines = path.read_text().splitlines()
    body = [f"  {sep.join(line.split())}{sep}  " for line in lines[2:]]
    path.write_text("\n".join(lines[:2] + body) + "\n")
    assert load_quietly(root) == expected


def test_item_ids_become_ints(root: Path) -> None:
    """Catches item ids parsed with strip('id_0') (id_00000010 would become 1) or kept as
    strings: id_00000010 and id_00000100 are the items 10 and 100."""
    path = partition(root)
    text = path.read_text().replace("id_00000005 ", "id_00000010 ")
    path.write_text(text.replace("id_00000011 ", "id_00000100 "))
    data = load_quietly(root)
    assert Counter(data.test.labels) == {10: 1, 100: 2, 17: 3, 23: 1, 29: 2, 35: 3}
    assert all(type(y) is int for y in data.train.labels + data.test.labels)


@pytest.mark.parametrize("item", ["00000002", "id_", "id_0000000x", "ID_00000002", "id_-1"])
def test_malformed_item_id_names_file_and_line(root: Path, item: str) -> None:
    """Catches an item id that is not id_<digits> turned into a label (or a traceback)."""
    path = partition(root)
    edit_line(path, 3, f"img/WOMEN/Dresses/id_00000002/01_2_side.jpg   {item} train")
    assert error_line(lambda: load_inshop(root)) == (
        f"{path}:4: item_id {item!r} is not of the form id_<digits> (e.g. id_00000002)"
    )


@pytest.mark.parametrize("status", ["val", "test", "Query"])
def test_unknown_status_names_line_and_allowed_ones(root: Path, status: str) -> None:
    """Catches an unknown evaluation_status dropped or sent to a default split (a 'test'
    status read as query, 'Query' as query in one loader and not another)."""
    path = partition(root)
    edit_line(path, 4, f"img/MEN/Denim/id_00000005/01_1_front.jpg   id_00000005   {status}")
    assert error_line(lambda: load_inshop(root)) == (
        f"{path}:5: evaluation_status {status!r} is not one of train, query, gallery"
    )


@pytest.mark.parametrize(
    "line", ["img/MEN/Denim/id_00000005/01_1_front.jpg id_00000005", "a b c d", "lonely"]
)
def test_malformed_line_names_file_and_line(root: Path, line: str) -> None:
    """Catches a line of other than 3 fields read anyway (an image name with a space, a
    missing status), and line numbers off by the two leading lines."""
    path = partition(root)
    edit_line(path, 4, line)
    assert (
        error_line(lambda: load_inshop(root))
        == f"{path}:5: malformed line {line!r}; expected {INSHOP_LINE}"
    )


def test_first_line_must_be_the_count(root: Path) -> None:
    """Catches a file without its count line read from the header on (one image lost)."""
    path = partition(root)
    path.write_text("\n".join(path.read_text().splitlines()[1:]) + "\n")
    assert error_line(lambda: load_inshop(root)) == (
        f"{path}:1: expected the number of images, found 'image_name item_id evaluation_status'"
    )
    path.write_text("")
    with pytest.raises(DmlError, match=r":1: expected the number of images, found an empty file"):
        load_inshop(root)


def test_second_line_must_be_the_header(root: Path) -> None:
    """Catches a missing header line skipped blindly, losing the first image."""
    path = partition(root)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    assert error_line(lambda: load_inshop(root)) == (
        f"{path}:2: expected the header 'image_name item_id evaluation_status', "
        "found 'img/WOMEN/Dresses/id_00000002/01_1_front.jpg                 id_00000002 train'"
    )


def test_count_line_must_match_the_lines(root: Path) -> None:
    """Catches a truncated partition file (a partial download) loaded as if complete."""
    path = partition(root)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    assert error_line(lambda: load_inshop(root)) == (
        f"{path}:1: declares 42 images but the file lists 41 (truncated or edited file)"
    )


def test_duplicate_image_is_refused(root: Path) -> None:
    """Catches an image listed twice (e.g. both query and gallery) loaded twice."""
    path = partition(root)
    edit_line(path, 5, "img/MEN/Denim/id_00000005/01_1_front.jpg id_00000005 gallery")
    assert (
        error_line(lambda: load_inshop(root))
        == f"{path}:6: duplicate image img/MEN/Denim/id_00000005/01_1_front.jpg"
    )


@pytest.mark.parametrize(("index", "status"), [(4, "query"), (5, "gallery")])
def test_train_item_among_test_items_is_refused(root: Path, index: int, status: str) -> None:
    """Catches a train item also queried or searched for: retrieval scored on seen items."""
    path = partition(root)
    edit_line(path, index, f"img/MEN/Denim/id_00000002/x_{status}.jpg id_00000002 {status}")
    assert error_line(lambda: load_inshop(root)) == (
        f"item id_00000002 of {path} has both train and query/gallery images "
        "(1 of 6 train items); retrieval needs disjoint train and test items"
    )


def test_missing_root_names_path_and_layout(tmp_path: Path) -> None:
    """Catches a traceback (or a vague message) for a root that does not exist."""
    missing = tmp_path / "nowhere"
    assert error_line(lambda: load_inshop(missing)) == (
        f"dataset root {missing} does not exist; expected an In-Shop (DeepFashion) folder "
        "holding Eval/list_eval_partition.txt and Img/img/"
    )


@pytest.mark.parametrize("remove", ["file", "folder"])
def test_missing_partition_file_names_it(root: Path, remove: str) -> None:
    """Catches a missing Eval/list_eval_partition.txt (or Eval/) failing without its path."""
    path = partition(root)
    path.unlink()
    if remove == "folder":
        path.parent.rmdir()
    assert error_line(lambda: load_inshop(root)) == (
        f"missing {path}; expected a file with the number of images on line 1, the header "
        f"'image_name item_id evaluation_status' on line 2, then {INSHOP_LINE}"
    )


def test_missing_images_name_first_and_count(root: Path) -> None:
    """Catches images missing on disk found only mid-run, or gallery images not checked."""
    data = load_quietly(root)
    data.gallery.paths[3].unlink()
    data.gallery.paths[1].unlink()
    assert error_line(lambda: load_inshop(root)) == (
        f"2 of 42 images listed in {partition(root)} are missing on disk; "
        f"first missing: {data.gallery.paths[1]}"
    )


def test_count_warning_names_all_three_splits(root: Path, monkeypatch) -> None:
    """Catches the gallery left out of the count check (or the 2-split message reused,
    which would call the queries 'test'), and a warning on the official counts."""
    with pytest.warns(UserWarning) as record:
        load_inshop(root)
    assert [str(w.message) for w in record] == [
        f"In-Shop at {root}: found 18 train / 12 query / 12 gallery images, "
        "expected 25882 / 14218 / 12612 (partial or modified dataset)"
    ]
    assert inshop.INSHOP_EXPECTED == (25882, 14218, 12612)
    monkeypatch.setattr(inshop, "INSHOP_EXPECTED", (18, 12, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_inshop(root)


def test_gallery_count_warning_is_raised_at_the_caller(root: Path) -> None:
    """Catches a stacklevel that blames inshop.py instead of the code that loaded the data."""
    with pytest.warns(UserWarning) as record:
        load_inshop(root)
    assert record[0].filename == __file__
    data = RetrievalData(Split([], []), Split([], []), gallery=Split([], []))
    with pytest.warns(UserWarning, match=r"found 0 train / 0 query / 0 gallery images"):
        warn_if_counts_differ("X", root, data, (1, 1, 1))


def test_dispatch_by_name(root: Path) -> None:
    """Catches dataset=inshop unregistered for retrieval (or its gallery dropped on the way),
    or loaded for classification instead of refused in one line before any file is read."""
    cfg = OmegaConf.create({"name": "inshop", "root": str(root)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert load_retrieval_data(cfg) == load_inshop(root)
    nowhere = OmegaConf.create({"name": "inshop", "root": str(root / "nowhere")})
    assert error_line(lambda: load_classification_data(nowhere)) == (
        "dataset=inshop is a retrieval benchmark (In-Shop Clothes Retrieval) with no "
        "classification split: use task=retrieval"
    )


def test_retrieval_data_gallery_defaults_to_none() -> None:
    """Catches the new field breaking two-split constructions (positional or keyword), or
    the dataclass losing frozen."""
    a, b, c = Split([Path("a")], [1]), Split([Path("b")], [2]), Split([Path("c")], [2])
    assert RetrievalData(a, b).gallery is None
    assert RetrievalData(train=a, test=b) == RetrievalData(a, b, None)
    assert RetrievalData(a, b, c).gallery == c != RetrievalData(a, b)
    with pytest.raises(dataclasses.FrozenInstanceError):
        RetrievalData(a, b).gallery = c  # type: ignore[misc]
