"""Shared fixtures: paths of the real recorded sessions shipped in tests/fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
RECORDINGS = FIXTURES / "recordings"


@pytest.fixture
def okx_session() -> Path:
    """A real OKX v5 public session (2022-05-13, 11 s) in the recording format."""
    return RECORDINGS / "okx-2022-05-13.rec"


@pytest.fixture
def binance_session() -> Path:
    """The first 4 s of a real Binance USD-M session (2021-07-22) with its REST bootstrap."""
    return RECORDINGS / "binance-usdm-2021-07-22-head.rec"
