"""The real data sets in ``/work/shared/data`` (read-only, next to the checkout).

A test that needs them calls :func:`require`: a missing file is a test FAILURE naming the path,
never a skip, so a CI machine without the data cannot pass by running fewer tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def require(*paths: Path) -> None:
    """Fail the calling test unless every path exists."""
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        pytest.fail(
            f"shared data missing: {', '.join(missing)} not found; this test needs the real data "
            f"set in {SHARED} (the shared data directory next to the checkout)",
            pytrace=False,
        )
