"""Run a program of ``examples/keras`` in-process, on lstmkit or (for calibration) on Keras 3.

The Keras version is the same file with the import lines swapped back — the claim under test is
that the import lines are the only difference. ``SMALL`` holds each program's reduced size (the
environment variables ``examples/keras/_data.py`` reads).
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "keras"

#: per program: environment for a small run (a CI-sized slice of data and epochs)
SMALL = {
    "addition_rnn": {"LSTMKIT_EXAMPLE_SCALE": "0.06", "LSTMKIT_EXAMPLE_EPOCHS": "9"},
    "lstm_seq2seq": {
        "LSTMKIT_EXAMPLE_SCALE": "0.03",
        "LSTMKIT_EXAMPLE_EPOCHS": "8",
        "LSTMKIT_EXAMPLE_UNITS": "64",
        "LSTMKIT_EXAMPLE_DECODE": "2",
    },
    "bidirectional_lstm_imdb": {"LSTMKIT_EXAMPLE_SCALE": "0.2", "LSTMKIT_EXAMPLE_EPOCHS": "2"},
    "text_generation": {"LSTMKIT_EXAMPLE_SCALE": "0.05", "LSTMKIT_EXAMPLE_EPOCHS": "2"},
    "encoder_decoder_forecast": {"LSTMKIT_EXAMPLE_EPOCHS": "30"},
    "nmt_attention": {
        "LSTMKIT_EXAMPLE_SCALE": "0.03",
        "LSTMKIT_EXAMPLE_EPOCHS": "6",
        "LSTMKIT_EXAMPLE_UNITS": "32",
        "LSTMKIT_EXAMPLE_EMB": "32",
        "LSTMKIT_EXAMPLE_DECODE": "2",
    },
}

SWAPS = [
    ("import lstmkit as keras", "import keras"),
    ("from lstmkit import layers", "from keras import layers"),
    ("from lstmkit.layers import", "from keras.layers import"),
    ("from lstmkit.models import", "from keras.models import"),
]


def source(name, lib):
    text = (EXAMPLES / f"{name}.py").read_text(encoding="utf-8")
    if lib == "keras":
        for ours, theirs in SWAPS:
            text = text.replace(ours, theirs)
    return text


def run(name, lib="lstmkit", workdir=None, seed=0, extra_env=None):
    """Execute the program; returns its globals (``model``, ``history`` ...)."""
    env = {**SMALL[name], **(extra_env or {})}
    if workdir is not None:
        env.setdefault("LSTMKIT_EXAMPLE_OUT", str(Path(workdir) / "s2s_model.keras"))
    old_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    sys.path.insert(0, str(EXAMPLES))
    random.seed(seed)
    np.random.seed(seed)
    if lib == "keras":
        import keras

        keras.utils.set_random_seed(seed)
    else:
        import lstmkit

        lstmkit.set_random_seed(seed)
    try:
        code = compile(source(name, lib), str(EXAMPLES / f"{name}.py"), "exec")
        scope = {"__name__": "__main__", "__file__": str(EXAMPLES / f"{name}.py")}
        exec(code, scope)  # noqa: S102 - our own example program
        return scope
    finally:
        sys.path.remove(str(EXAMPLES))
        sys.modules.pop("_data", None)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


if __name__ == "__main__":  # calibration: python tests/keras_examples.py keras NAME
    import io
    from contextlib import redirect_stdout

    lib, name = sys.argv[1], sys.argv[2]
    import tempfile

    with tempfile.TemporaryDirectory() as d, redirect_stdout(io.StringIO()):
        g = run(name, lib, workdir=d)
    h = g["history"].history
    print(name, lib, {k: [round(float(v), 4) for v in vals] for k, vals in h.items()})
    if "losses" in g:
        print("losses", g["losses"])
    if "rmse" in g:
        print("rmse", g["rmse"])
    if "bleu" in g:
        print("bleu", g["bleu"], "copy", g["copy_bleu"])
