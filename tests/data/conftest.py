from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest

from neurodyn.errors import DataFormatError

DATASETS = Path(__file__).resolve().parents[2] / "datasets"


@contextmanager
def _raises_format(path, problem: str):
    """Exactly one DataFormatError naming ``path`` and ``problem``, no library error chained."""
    with pytest.raises(DataFormatError) as info:
        yield info
    msg = str(info.value)
    assert str(path) in msg, msg
    assert problem in msg, msg
    exc = info.value
    assert exc.__cause__ is None, "a library exception is chained as the cause"
    assert exc.__context__ is None or exc.__suppress_context__, "a library traceback leaks through"


@pytest.fixture
def raises_format():
    return _raises_format


@pytest.fixture
def datasets_dir() -> Path:
    return DATASETS
