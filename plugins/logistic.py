"""L2-regularised logistic regression solved exactly: the objective of scikit-learn's
``LogisticRegression(C=C)`` (penalty 'l2', an intercept, no class weights), minimised by
Newton's method to the rounding level instead of by L-BFGS to a tolerance.

The objective, with ``w`` the weights and ``b`` the intercepts (never penalised):

- two classes: one weight vector and the sigmoid, ``C sum_i log(1 + exp(-s_i (x_i.w + b))) +
  ||w||^2 / 2`` with ``s_i`` +1 for the larger label, -1 for the smaller;
- K >= 3 classes: K weight vectors and the softmax, ``C sum_i (logsumexp_k(x_i.w_k + b_k) -
  (x_i.w_{y_i} + b_{y_i})) + ||W||_F^2 / 2``. The loss's gradients sum to zero over the
  classes, so at the minimum the weights do too; the intercepts are free up to a common shift,
  fixed at a zero sum (where lbfgs, starting at zero, leaves it). So the unknowns are the first
  K - 1 classes' weights and intercepts, the last class's being minus their sum.

It is strictly convex in ``w`` (the penalty is), so its minimum is one point whatever the
solver. Newton's method (backtracking line search) converges quadratically to it; it stops once
the gradient is down to ``TOL`` of its start, within a step of the rounding level. The rows are
centred first (the intercept absorbs the shift).

Fewer rows than dimensions (n < d, the usual probe): the minimising ``w`` lies in the span of the
rows (a part outside it adds to the penalty and to no score), so ``w = X^T a`` and the problem is
solved for the n dual coefficients ``a``: scores ``G a + b``, penalty ``a^T G a / 2``, ``G = X
X^T``. Each row of its gradient and Hessian in ``a`` is ``G`` times a row of simpler ones, so a
Newton step solves the simpler (n + 1)-square system per class (a singular ``G``, from repeated
rows, does no harm): Newton on ``w`` with n unknowns per class instead of d. Otherwise (n >= d)
Newton works on ``w`` itself, d + 1 unknowns per class: its cost grows as d^3, and with many rows
of few classes lbfgs's few cheap steps can be faster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Newton stops when the gradient's largest entry falls below this share of its start value
TOL = 1e-10
#: a step's predicted decrease, relative to the value, below which values are compared within
#: their rounding: from there on, full steps while they shrink the gradient
FLAT = 1e-10
MAX_ITER = 100
HALVINGS = 40

Objective = Callable[[np.ndarray, bool], tuple[float, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Model:
    """A fitted model: sorted ``classes``, ``coef`` (1, d) for two classes and (K, d) for K >=
    3, ``intercept`` (1,) or (K,): scikit-learn's ``coef_`` and ``intercept_``."""

    classes: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray


def fit(X: np.ndarray, y: np.ndarray, C: float = 1.0) -> Model:
    """The minimiser of scikit-learn's ``LogisticRegression(C=C)`` objective on rows ``X`` (n, d)
    and labels ``y`` (at least two distinct)."""
    X = np.asarray(X, dtype=np.float64)
    classes, label = np.unique(np.asarray(y).reshape(-1), return_inverse=True)
    if len(classes) < 2:
        raise ValueError("logistic regression needs at least 2 classes")
    mean = X.mean(axis=0)
    X = X - mean
    dual = X.shape[0] < X.shape[1]
    problem = Newton(X @ X.T if dual else X, dual, C)
    K = len(classes)
    if K == 2:
        theta = problem.solve(problem.binary(2.0 * label - 1.0), 1).reshape(1, -1)
    else:
        theta = problem.solve(problem.softmax(np.eye(K)[label]), K - 1).reshape(K - 1, -1)
        theta = np.vstack([theta, -theta.sum(axis=0)])
    coef = theta[:, :-1] @ X if dual else theta[:, :-1]
    return Model(classes, coef, theta[:, -1] - coef @ mean)


def decision_function(model: Model, X: np.ndarray) -> np.ndarray:
    """Scores: (n,) for two classes (positive: the larger class), (n, K) otherwise."""
    scores = np.asarray(X, dtype=np.float64) @ model.coef.T + model.intercept
    return scores[:, 0] if len(model.classes) == 2 else scores


def predict(model: Model, X: np.ndarray) -> np.ndarray:
    """The predicted class of each row, as scikit-learn: for two classes the larger where the
    score is positive, the smaller otherwise; else the top score's (a tie: the first)."""
    scores = decision_function(model, X)
    if len(model.classes) == 2:
        return model.classes[(scores > 0).astype(np.int64)]
    return model.classes[scores.argmax(axis=1)]


def objective(model: Model, X: np.ndarray, y: np.ndarray, C: float = 1.0) -> float:
    """The objective (module docstring) at ``model`` on ``X``, ``y``."""
    scores = decision_function(model, X)
    label = np.searchsorted(model.classes, np.asarray(y).reshape(-1))
    if len(model.classes) == 2:
        loss = np.logaddexp(0.0, -(2.0 * label - 1.0) * scores).sum()
    else:
        loss = (logsumexp(scores) - scores[np.arange(len(label)), label]).sum()
    return float(C * loss + 0.5 * np.sum(model.coef ** 2))


def logsumexp(S: np.ndarray) -> np.ndarray:
    top = S.max(axis=1)
    return top + np.log(np.exp(S - top[:, None]).sum(axis=1))


class Newton:
    """The objective on centred rows in the unknowns ``theta``: per class, weights on the
    columns of ``Z`` and the intercept. ``Z`` is the rows ``X`` (penalty ``||w||^2 / 2``) or, in
    the ``dual``, their Gram matrix ``G`` (``w = X^T a``, penalty ``a^T G a / 2``), where the
    objectives hand back the gradient and Hessian without their left factor ``R`` =
    diag(``G``, 1): the Newton step is the same. ``metric`` applies ``R``."""

    def __init__(self, Z: np.ndarray, dual: bool, C: float) -> None:
        self.Z, self.dual, self.C = Z, dual, C
        self.A = np.hstack([Z, np.ones((Z.shape[0], 1))])
        self.penalised = np.ones(self.A.shape[1])
        self.penalised[-1] = 0.0

    def left(self, M: np.ndarray) -> np.ndarray:
        """``A^T M`` (over M's first axis) without ``R``: ``[M; 1^T M]`` in the dual."""
        if self.dual:
            return np.concatenate([M, M.sum(axis=0, keepdims=True)])
        return np.tensordot(self.A, M, axes=(0, 0))

    def curvature(self, weights: np.ndarray) -> np.ndarray:
        """``A^T diag(weights) A`` without ``R`` (a BLAS syrk where the weights are >= 0)."""
        if self.dual:
            out = np.empty((self.A.shape[1], self.A.shape[1]))
            np.multiply(weights[:, None], self.A, out=out[:-1])
            out[-1] = out[:-1].sum(axis=0)
            return out
        if weights.min() >= 0.0:
            root = np.sqrt(weights)[:, None] * self.A
            return root.T @ root
        return self.A.T @ (weights[:, None] * self.A)

    def metric(self, V: np.ndarray) -> np.ndarray:
        """``R`` applied to each row of ``V`` (one class's unknowns per row)."""
        if not self.dual:
            return V
        out = V.copy()
        out[:, :-1] = V[:, :-1] @ self.Z
        return out

    def penalty(self, W: np.ndarray, S: np.ndarray) -> float:
        """``||w||^2 / 2`` summed over the classes' rows of ``W``, given their scores ``S``
        (n, classes): in the dual ``a^T G a = a^T (scores - b)``."""
        if not self.dual:
            return 0.5 * float(np.sum(W[:, :-1] ** 2))
        return 0.5 * float(np.sum(W[:, :-1].T * (S - W[:, -1])))

    def binary(self, sign: np.ndarray) -> Objective:
        """Value, gradient and (``second``) Hessian of the two-class objective."""
        A, C, penalised = self.A, self.C, self.penalised

        def evaluate(theta: np.ndarray, second: bool) -> tuple[float, np.ndarray, np.ndarray]:
            scores = A @ theta
            margin = sign * scores
            value = C * float(np.logaddexp(0.0, -margin).sum()) + self.penalty(
                theta[None], scores[:, None])
            if not second:
                return value, theta, theta
            wrong = np.exp(-np.logaddexp(0.0, margin))  # sigmoid(-margin), without overflow
            grad = self.left(C * -sign * wrong) + penalised * theta
            hess = self.curvature(C * wrong * (1.0 - wrong))
            hess.flat[::len(theta) + 1] += penalised
            return value, grad, hess
        return evaluate

    def softmax(self, onehot: np.ndarray) -> Objective:
        """As ``binary`` for K classes, in the K - 1 first classes' unknowns (flattened)."""
        A, C, penalised = self.A, self.C, self.penalised
        m = A.shape[1]
        K = onehot.shape[1]
        both = np.kron(np.eye(K - 1) + 1.0, np.diag(penalised))  # the penalty's Hessian

        def evaluate(theta: np.ndarray, second: bool) -> tuple[float, np.ndarray, np.ndarray]:
            W = theta.reshape(K - 1, m)
            W = np.vstack([W, -W.sum(axis=0)])
            S = A @ W.T
            lse = logsumexp(S)
            value = C * float(lse.sum() - np.sum(S * onehot)) + self.penalty(W, S)
            if not second:
                return value, theta, theta
            P = np.exp(S - lse[:, None])
            full = self.left(C * (P - onehot)).T + penalised * W
            grad = (full[:-1] - full[-1]).ravel()
            # per row, the loss's Hessian in the first K - 1 classes' scores (the last class's
            # being minus their sum): diag(P_k) + P_K - (P_k - P_K)(P_l - P_K)
            gap = P[:, :-1] - P[:, -1:]
            hess = both.copy()
            for k in range(K - 1):
                for j in range(k, K - 1):
                    weight = P[:, -1] + (k == j) * P[:, k] - gap[:, k] * gap[:, j]
                    block = self.curvature(C * weight)
                    hess[k * m:(k + 1) * m, j * m:(j + 1) * m] += block
                    if j != k:  # the same weights: the same block (stripped or not)
                        hess[j * m:(j + 1) * m, k * m:(k + 1) * m] += block
            return value, grad, hess
        return evaluate

    def solve(self, evaluate: Objective, rows: int) -> np.ndarray:
        """The minimiser (``rows`` classes' unknowns, flattened), from zero, by Newton steps.
        A step that does not lower the objective enough (Armijo) is cut to the minimum of the
        quadratic through the values and slope seen (within 0.1-0.5 of it). Once the predicted
        decrease is below ``FLAT``, full steps while they shrink the gradient. Stops when the
        gradient (in the dual, stripped of ``R``) is down to ``TOL`` of its start."""
        theta = np.zeros(rows * self.A.shape[1])
        value, grad, hess = evaluate(theta, True)
        largest = float(np.abs(grad).max())
        stop = TOL * max(1.0, largest)
        for _ in range(MAX_ITER):
            if largest <= stop:
                break
            try:
                step = np.linalg.solve(hess, -grad)
            except np.linalg.LinAlgError:  # curvature underflowed to zero somewhere
                step = np.linalg.lstsq(hess, -grad, rcond=None)[0]
            along = self.metric(step.reshape(rows, -1)).ravel()
            slope = float(grad @ along)  # the objective's derivative along the step, at 0
            trial = evaluate(theta + step, True)
            t, end = 1.0, trial[0]
            if -slope <= FLAT * (1.0 + abs(value)):
                if float(np.abs(trial[1]).max()) >= largest:
                    break  # the gradient is at its rounding level
            elif end > value + 1e-4 * slope:
                for _ in range(HALVINGS):
                    cut = -slope * t * t / (2.0 * (end - value - slope * t))
                    t = min(max(cut, 0.1 * t), 0.5 * t)
                    end = evaluate(theta + t * step, False)[0]
                    if end <= value + 1e-4 * t * slope:
                        break
                else:
                    return theta  # no step lowers it: the minimum to rounding
            if t != 1.0:
                step = t * step
                trial = evaluate(theta + step, True)
            theta = theta + step
            value, grad, hess = trial
            largest = float(np.abs(grad).max())
        return theta
