"""Puts the pipeline on the path and finds the real data (../shared/data from
the repository root, or LATENT_TRIO_DATA)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPOSITORY / "models"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("LATENT_TRIO_DATA", REPOSITORY.parent / "shared" / "data"))
    if not (path / "groove" / "info.csv").is_file() or not (path / "pop909").is_dir():
        pytest.fail(f"the training data is not at {path}; set LATENT_TRIO_DATA")
    return path
