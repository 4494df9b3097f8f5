"""Keras 3's own recurrent-layer test vectors, run on lstmkit.

The test methods are read from the installed Keras package's test files
(``keras/src/layers/rnn/*_test.py``) and executed with ``layers`` and ``initializers`` bound to
lstmkit's: the golden numbers are Keras' (a published witness), the code calling the layers is
Keras' too. Every method that compares against numbers runs, except those listed in ``EXCLUDED``
with the reason lstmkit cannot express them.
"""

from __future__ import annotations

import ast
import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lstmkit import initializers, layers

os.environ["KERAS_BACKEND"] = "torch"  # as the other Keras-witnessed tests: alone too
keras = pytest.importorskip("keras")
RNN_TESTS = Path(keras.__file__).parent / "src" / "layers" / "rnn"
FILES = [
    "lstm_test.py",
    "gru_test.py",
    "simple_rnn_test.py",
    "bidirectional_test.py",
    "stacked_rnn_cells_test.py",
    "time_distributed_test.py",
    "rnn_test.py",
]

#: what lstmkit cannot run, and why
EXCLUDED = {
    # cells defined in the test file with Keras ops: lstmkit has no autodiff to derive their
    # backward step (a user cell states it: tests/test_cells.py)
    **{
        f"{f}::{name}": "cell written with Keras ops"
        for f, names in {
            "rnn_test.py": [
                "test_forward_pass_single_state",
                "test_forward_pass_two_states",
                "test_passing_initial_state_single_state",
                "test_passing_initial_state_two_states",
                "test_statefulness_single_state",
                "test_statefulness_two_states",
                "test_go_backwards",
                "test_masking",
            ],
            "stacked_rnn_cells_test.py": [
                "test_correctness_single_state_stack",
                "test_correctness_two_states_stack",
                "test_statefullness_single_state_stack",
                "test_statefullness_two_states_stack",
            ],
        }.items()
        for name in names
    },
    # Keras' Layer.build takes the batch axis; lstmkit's layer protocol does not (models do)
    "bidirectional_test.py::test_fused_lstm_matches_unfused": "Layer.build with the batch axis",
    "bidirectional_test.py::test_fused_gru_matches_unfused": "Layer.build with the batch axis",
    # a Keras-internal base class (layers.Wrapper) subclassed in the test
    "time_distributed_test.py::test_masking": "subclasses keras.layers.Wrapper",
}


class _Case:
    """The assertions Keras' TestCase offers these methods."""

    def assertAllClose(self, a, b, atol=1e-6, rtol=1e-6, **_):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol, rtol=rtol)

    def assertEqual(self, a, b, *_, **__):
        assert a == b, (a, b)


def _methods(with_excluded=False):
    out = []
    for fname in FILES:
        src = (RNN_TESTS / fname).read_text()
        for node in ast.walk(ast.parse(src)):
            if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
                continue
            code = ast.get_source_segment(src, node)
            if "assertAllClose" not in code:
                continue  # shape/serialization checks of Keras' own machinery
            if f"{fname}::{node.name}" in EXCLUDED and not with_excluded:
                continue
            params = [a.arg for a in node.args.args if a.arg != "self"]
            for args in ([1], [2]) if params else ([],):
                out.append(
                    pytest.param(fname, node.name, code, args, id=f"{fname}::{node.name}{args}")
                )
    return out


@pytest.mark.parametrize("fname, name, code, args", _methods())
def test_keras_vector(fname, name, code, args):
    scope = {"np": np, "layers": layers, "initializers": initializers}
    exec(textwrap.dedent(code), scope)  # noqa: S102 - Keras' own test method
    scope[name](_Case(), *args)


def test_the_excluded_vectors_are_few_and_named():
    """The exclusions refer to methods that exist, and most vectors run."""
    every = {f"{f}::{n}" for f, n, *_ in (p.values for p in _methods(with_excluded=True))}
    run = {f"{f}::{n}" for f, n, *_ in (p.values for p in _methods())}
    assert set(EXCLUDED) <= every and not (run & set(EXCLUDED))
    assert len(run) >= 15
