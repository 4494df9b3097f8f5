"""Hinge losses for labels in {-1, 1} (labels in {0, 1} are mapped to {-1, 1} first, when
every label of the batch is 0 or 1, as Keras does)."""

from __future__ import annotations

import numpy as np

from .base import _Elementwise


def _signed(t):
    """Keras' convert_binary_labels_to_hinge: the whole batch or nothing."""
    return 2.0 * t - 1.0 if np.all((t == 0) | (t == 1)) else t


class Hinge(_Elementwise):
    """``max(1 - t y, 0)``; derivative ``-t`` where ``t y < 1``, else 0."""

    name = "hinge"

    def _values(self, y_true, y_pred):
        return super()._values(_signed(y_true), y_pred)

    def _dvalues(self, y_true, y_pred):
        return super()._dvalues(_signed(y_true), y_pred)

    def _e(self, t, y):
        return np.maximum(1.0 - t * y, 0.0)

    def _de(self, t, y):
        return np.where(t * y < 1.0, -t, 0).astype(y.dtype, copy=False)


class SquaredHinge(Hinge):
    """``max(1 - t y, 0)^2``; derivative ``-2 t max(1 - t y, 0)``."""

    name = "squared_hinge"

    def _e(self, t, y):
        return np.square(np.maximum(1.0 - t * y, 0.0))

    def _de(self, t, y):
        return -2.0 * t * np.maximum(1.0 - t * y, 0.0)
