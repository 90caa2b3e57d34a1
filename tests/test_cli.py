"""train.py's argv preprocessing."""

from dml.cli import quote_numeric_choices


def test_numeric_pruning_choices_are_quoted():
    argv = [
        "train.py",
        "pruning=16",
        "-m",
        "pruning=16,15_16",
        "model=resnet50",
        "trainer.epochs=16",
        "pruning=none",
        "+pruning=15_16",
    ]
    assert quote_numeric_choices(argv) == [
        "train.py",
        "pruning='16'",
        "-m",
        "pruning='16','15_16'",
        "model=resnet50",
        "trainer.epochs=16",
        "pruning=none",
        "+pruning='15_16'",
    ]
