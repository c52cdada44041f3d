"""Fixtures of the training tests: the tiny SHD-format data set of tiny_shd_data.py."""
from pathlib import Path

import pytest
from tiny_shd_data import write_tiny_shd


@pytest.fixture(scope="package")
def tiny_shd(tmp_path_factory) -> Path:
    return write_tiny_shd(tmp_path_factory.mktemp("tiny_shd"))
