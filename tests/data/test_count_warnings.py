"""Both real loaders warn with found vs expected counts, and only when they differ."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from dml.data import cars, cub
from tests.data.fixtures import write_cars_fixture, write_cub_fixture

# (module, loader, expected-counts constant, official counts, fixture writer, train/test ids)
LOADERS = [
    (cub, cub.load_cub200, "CUB_EXPECTED", (5864, 5924), write_cub_fixture, [1, 2, 101, 150]),
    (cars, cars.load_cars196, "CARS_EXPECTED", (8054, 8131), write_cars_fixture, [1, 98, 99, 196]),
]


@pytest.mark.parametrize(("module", "load", "const", "official", "write", "classes"), LOADERS)
def test_count_mismatch_warns_found_and_expected(
    tmp_path: Path, module, load, const, official, write, classes
) -> None:
    write(tmp_path, classes, 3)
    with pytest.warns(UserWarning) as record:
        load(tmp_path)
    message = str(record[0].message)
    assert str(tmp_path) in message and "found 6 train / 6 test" in message
    assert f"expected {official[0]} / {official[1]}" in message


@pytest.mark.parametrize(("module", "load", "const", "official", "write", "classes"), LOADERS)
def test_no_warning_when_counts_match(
    tmp_path: Path, monkeypatch, module, load, const, official, write, classes
) -> None:
    write(tmp_path, classes, 3)
    monkeypatch.setattr(module, const, (6, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load(tmp_path)
    assert (len(data.train), len(data.test)) == (6, 6)
