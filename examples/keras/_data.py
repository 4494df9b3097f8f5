"""Where the examples find their data (the lines that replace ``keras.utils.get_file`` and
``keras.datasets``), and the knobs a test uses to run them small: ``LSTMKIT_EXAMPLE_SCALE``
(a fraction of the samples) and ``LSTMKIT_EXAMPLE_EPOCHS``."""

import os
from pathlib import Path

SHARED = Path(os.environ.get("LSTMKIT_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def scaled(n):
    return max(1, int(n * float(os.environ.get("LSTMKIT_EXAMPLE_SCALE", "1"))))


def epochs(n):
    return int(os.environ.get("LSTMKIT_EXAMPLE_EPOCHS", n))
