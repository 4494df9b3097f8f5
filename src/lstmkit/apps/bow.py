"""Bag-of-words logistic regression: the baseline every text classifier is reported next to.

Features: one column per vocabulary word (``<pad>``/``<unk>`` excluded), either ``"binary"``
(1 if the word occurs in the text) or ``"tf"`` (how often it occurs). The matrix is kept sparse as
``(rows, cols, vals)`` triplets; ``X @ W`` and ``X.T @ G`` are ``np.bincount`` sums, so nothing
dense of size ``texts x vocabulary`` is ever built.

Model and objective (``K = 1`` sigmoid output for two classes, ``K = C`` softmax otherwise)::

    z = X W + b                                   W (V, K), b (K,)
    J = sum_n CE(y_n, z_n) + (l2 / 2) ||W||^2     the bias is not penalised (scikit-learn's C = 1/l2)
    dJ/dz = sigmoid(z) - y   or   softmax(z) - onehot(y)
    dJ/dW = X^T dJ/dz + l2 W,   dJ/db = sum_n dJ/dz

J is convex, so the optimiser only decides how fast we get there: L-BFGS from SciPy when it is
installed (``lstmkit[fast]``), otherwise Nesterov-accelerated gradient descent with a backtracking
step size. ``l2`` is picked from a grid by validation accuracy in ``fit_best``.
"""

from __future__ import annotations

import numpy as np

from ..data.text import Vocabulary

FEATURES = ("binary", "tf")


def _log_sigmoid(z):
    return -np.logaddexp(0.0, -z)


class SparseRows:
    """A ``(n_rows, n_cols)`` sparse matrix as coordinate triplets, with the two products the
    regression needs."""

    def __init__(self, rows, cols, vals, shape):
        self.rows, self.cols, self.vals, self.shape = rows, cols, vals, shape

    def matmul(self, W):  # X @ W, W (n_cols, K) -> (n_rows, K)
        n = self.shape[0]
        return np.stack(
            [
                np.bincount(self.rows, self.vals * W[self.cols, k], minlength=n)
                for k in range(W.shape[1])
            ],
            axis=1,
        )

    def rmatmul(self, G):  # X.T @ G, G (n_rows, K) -> (n_cols, K)
        V = self.shape[1]
        return np.stack(
            [
                np.bincount(self.cols, self.vals * G[self.rows, k], minlength=V)
                for k in range(G.shape[1])
            ],
            axis=1,
        )


def bow_features(vocab: Vocabulary, texts, features="binary") -> SparseRows:
    """Bag-of-words matrix of ``texts`` over ``vocab``'s words (column ``id - 2``)."""
    if features not in FEATURES:
        raise ValueError(
            f"bow_features: argument 'features' must be one of {FEATURES}; got {features!r}"
        )
    rows, cols = [], []
    for n, text in enumerate(texts):
        ids = vocab.encode(text)
        ids = ids[ids >= 2]  # drop <pad> and <unk>
        rows.append(np.full(len(ids), n, np.int64))
        cols.append(ids.astype(np.int64) - 2)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    V = len(vocab) - 2
    key = np.unique(rows * V + cols, return_counts=True)  # merge repeats of a word in a text
    rows, cols = key[0] // V, key[0] % V
    vals = np.ones(len(rows)) if features == "binary" else key[1].astype(np.float64)
    return SparseRows(rows, cols, vals, (len(texts), V))


class LogisticRegression:
    """L2-regularised logistic (``n_classes == 2``) or softmax regression on sparse rows."""

    def __init__(self, n_classes, l2=1.0, max_iter=500, tol=1e-6):
        if n_classes < 2:
            raise ValueError(
                f"LogisticRegression: argument 'n_classes' must be >= 2; got {n_classes}"
            )
        if l2 < 0:
            raise ValueError(f"LogisticRegression: argument 'l2' must be >= 0; got {l2!r}")
        self.n_classes, self.l2, self.max_iter, self.tol = n_classes, float(l2), max_iter, tol
        self.K = 1 if n_classes == 2 else n_classes
        self.W = self.b = None
        self.optimizer = None

    def _unpack(self, theta, V):
        return theta[: V * self.K].reshape(V, self.K), theta[V * self.K :]

    def objective(self, theta, X: SparseRows, y):
        """``(J, dJ/dtheta)`` for ``theta = [W.ravel(), b]``; see the module docstring."""
        W, b = self._unpack(theta, X.shape[1])
        z = X.matmul(W) + b  # (N, K)
        if self.K == 1:
            z = z[:, 0]
            J = -np.sum(y * _log_sigmoid(z) + (1 - y) * _log_sigmoid(-z))
            G = (np.exp(_log_sigmoid(z)) - y)[:, None]
        else:
            zmax = z.max(axis=1, keepdims=True)
            lse = zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))
            J = np.sum(lse - z[np.arange(len(y)), y])
            G = np.exp(z - lse[:, None])
            G[np.arange(len(y)), y] -= 1.0
        J += 0.5 * self.l2 * np.sum(W * W)
        gW = X.rmatmul(G) + self.l2 * W
        return float(J), np.concatenate([gW.ravel(), G.sum(axis=0)])

    def fit(self, X: SparseRows, y):
        y = np.asarray(y, dtype=np.int64)
        theta0 = np.zeros(X.shape[1] * self.K + self.K)
        try:
            from scipy.optimize import minimize
        except ImportError:
            theta, self.optimizer = self._nesterov(theta0, X, y), "nesterov"
        else:
            res = minimize(
                self.objective, theta0, args=(X, y), jac=True, method="L-BFGS-B",
                options={"maxiter": self.max_iter, "gtol": self.tol},
            )  # fmt: skip
            theta, self.optimizer = res.x, "lbfgs"
        self.W, self.b = self._unpack(theta, X.shape[1])
        return self

    def _nesterov(self, theta, X, y):
        """Accelerated gradient descent with backtracking (FISTA without the prox)."""
        step, prev, t = 1.0, theta.copy(), 1.0
        for _ in range(self.max_iter * 4):
            t_next = 0.5 * (1 + np.sqrt(1 + 4 * t * t))
            v = theta + ((t - 1) / t_next) * (theta - prev)
            Jv, g = self.objective(v, X, y)
            while True:
                cand = v - step * g
                Jc, _ = self.objective(cand, X, y)
                if Jc <= Jv - 0.5 * step * np.dot(g, g):
                    break
                step *= 0.5
            prev, theta, t = theta, cand, t_next
            if np.linalg.norm(g) < self.tol * max(1.0, len(y)):
                break
        return theta

    def predict_proba(self, X: SparseRows) -> np.ndarray:
        """``(N, n_classes)`` class probabilities."""
        z = X.matmul(self.W) + self.b
        if self.K == 1:
            p1 = np.exp(_log_sigmoid(z[:, 0]))
            return np.stack([1 - p1, p1], axis=1)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: SparseRows) -> np.ndarray:
        return np.argmax(self.predict_proba(X), axis=1)


def fit_best(vocab, train, val, n_classes, features="binary", l2_grid=(0.3, 1.0, 3.0, 10.0, 30.0)):
    """Fit one regression per ``l2`` on ``train = (texts, y)`` and keep the best validation
    accuracy; returns ``(model, l2, {l2: val accuracy})``."""
    Xt, Xv = bow_features(vocab, train[0], features), bow_features(vocab, val[0], features)
    scores, best = {}, None
    for l2 in l2_grid:
        m = LogisticRegression(n_classes, l2).fit(Xt, train[1])
        scores[l2] = float(np.mean(m.predict(Xv) == np.asarray(val[1])))
        if best is None or scores[l2] > scores[best[1]]:
            best = (m, l2)
    return best[0], best[1], scores
