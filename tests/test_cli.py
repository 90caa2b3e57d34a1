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


def test_worker_wrapped_error_is_reduced_to_its_line():
    from dml.errors import DmlError
    from dml.run import one_line

    wrapped = DmlError(
        "Caught DmlError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
        'last):\n  File "x.py", line 1\ndml.errors.DmlError: cannot read image /d/a.jpg: bad\n'
    )
    assert one_line(wrapped) == "cannot read image /d/a.jpg: bad"
    assert one_line(DmlError("plain message")) == "plain message"
