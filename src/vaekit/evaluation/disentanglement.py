"""Disentanglement metrics, pure functions of codes (N, D) and factor indices (N, K).

MIG (Chen et al. 2018), in the discretised form of Locatello et al. (2019): each code
dimension cut into 20 equal-width bins, the mutual information of every (dimension,
factor) pair, and per factor the gap between the two most informative dimensions
over the factor's entropy. DCI (Eastwood & Williams 2018): an importance matrix R
(dimension x factor) from one random forest per factor (the paper's regressor; the
optional scikit-learn, `vaekit[disentangle]`), then disentanglement (1 - entropy of
each dimension's importances over the factors, weighted by its share), completeness
(1 - entropy of each factor's importances over the dimensions) and informativeness
(the forests' held-out accuracy). The FactorVAE score (Kim & Mnih 2018): fix one
factor in a group of examples, take the dimension whose variance (over the data's
scale) is least, and let a majority-vote classifier name the factor from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from vaekit import extras
from vaekit.evaluation.result import Disentanglement

BINS = 20


def discretize(codes: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Each column cut into `bins` equal-width bins over its own range: int (N, D)."""
    out = np.zeros(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, d], bins=bins)
        out[:, d] = np.digitize(codes[:, d], edges[1:-1])
    return out


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) in nats of two discrete sequences, from their joint histogram."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    joint = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(joint, (ai, bi), 1.0)
    joint /= joint.sum()
    outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log(joint[nz] / outer[nz])))


def entropy(a: np.ndarray) -> float:
    """H(a) in nats of a discrete sequence."""
    _, counts = np.unique(a, return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def mutual_information_matrix(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """I(code_d; factor_k) of the discretised codes: (D, K)."""
    binned = discretize(codes)
    return np.array(
        [
            [mutual_information(binned[:, d], factors[:, k]) for k in range(factors.shape[1])]
            for d in range(codes.shape[1])
        ]
    )


def mig(codes: np.ndarray, factors: np.ndarray) -> dict[str, Any]:
    """The mutual information gap, overall and per factor (factors that do not vary are
    skipped: their entropy is 0)."""
    mi = mutual_information_matrix(codes, factors)
    per_factor = []
    for k in range(factors.shape[1]):
        h = entropy(factors[:, k])
        top = np.sort(mi[:, k])[::-1]
        second = top[1] if len(top) > 1 else 0.0
        per_factor.append(float((top[0] - second) / h) if h > 0 else float("nan"))
    valid = [v for v in per_factor if not np.isnan(v)]
    return {"mig": float(np.mean(valid)), "per_factor": per_factor}


def _normalised_entropy(p: np.ndarray, axis: int) -> np.ndarray:
    """Entropy along `axis` of distributions p, in the base of their support size."""
    size = p.shape[axis]
    if size < 2:
        return np.zeros(np.delete(p.shape, axis))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=axis) / np.log(size)


def dci_from_importance(importance: np.ndarray) -> dict[str, float]:
    """Disentanglement and completeness of an importance matrix R (D codes x K factors)."""
    r = np.abs(np.asarray(importance, dtype=np.float64))
    total = r.sum()
    if total == 0:
        return {"disentanglement": 0.0, "completeness": 0.0}
    per_code = r.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_code = np.where(per_code[:, None] > 0, r / per_code[:, None], 0.0)
        p_factor = np.where(r.sum(axis=0) > 0, r / r.sum(axis=0), 0.0)
    disentanglement = 1.0 - _normalised_entropy(p_code, axis=1)
    weights = per_code / total
    completeness = 1.0 - _normalised_entropy(p_factor, axis=0)
    return {
        "disentanglement": float(np.sum(weights * disentanglement)),
        "completeness": float(np.mean(completeness)),
    }


Importance = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int], tuple]


def forest_importance(
    train_codes: np.ndarray,
    train_factor: np.ndarray,
    test_codes: np.ndarray,
    test_factor: np.ndarray,
    seed: int,
) -> tuple[np.ndarray, float]:
    """One random forest classifying a factor from the codes: its impurity importances
    (D,) and its held-out accuracy."""
    ensemble = extras.require("sklearn.ensemble", "disentangle", "DCI (its random forests)")
    forest = ensemble.RandomForestClassifier(
        n_estimators=50,
        max_depth=12,
        min_samples_leaf=10,
        max_features=None,
        random_state=seed,
        n_jobs=1,
    )
    forest.fit(train_codes, train_factor)
    accuracy = float(np.mean(forest.predict(test_codes) == test_factor))
    return forest.feature_importances_, accuracy


def dci(
    codes: np.ndarray,
    factors: np.ndarray,
    seed: int = 0,
    train_fraction: float = 0.8,
    importance: Importance = forest_importance,
) -> dict[str, Any]:
    """DCI with one regressor per factor, trained on the first `train_fraction` of the
    examples and scored on the rest (informativeness: mean held-out accuracy)."""
    cut = int(len(codes) * train_fraction)
    columns, accuracies = [], []
    for k in range(factors.shape[1]):
        if len(np.unique(factors[:cut, k])) < 2:
            continue
        train, test = (codes[:cut], factors[:cut, k]), (codes[cut:], factors[cut:, k])
        weights, accuracy = importance(*train, *test, seed)
        columns.append(weights)
        accuracies.append(accuracy)
    scores: dict[str, Any] = dci_from_importance(np.stack(columns, axis=1))
    scores["informativeness"] = float(np.mean(accuracies))
    scores["informativeness_per_factor"] = accuracies
    return scores


def factorvae_score(
    codes: np.ndarray,
    factors: np.ndarray,
    seed: int = 0,
    group: int = 64,
    train_votes: int = 1000,
    eval_votes: int = 500,
    prune: float = 0.05,
) -> dict[str, Any]:
    """Kim & Mnih's score on a pool of examples that covers the factors uniformly: each
    vote fixes a factor at a value, draws `group` examples of the pool that share it, and
    takes the dimension of least variance (codes divided by their standard deviation
    over the pool; dimensions whose variance is below `prune` are left out, as collapsed).
    Accuracy of the majority vote, fitted on the training votes, on the evaluation ones."""
    rng = np.random.default_rng(seed)
    scale = codes.std(axis=0)
    active = scale**2 >= prune
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "active_dims": 0}
    varying = [k for k in range(factors.shape[1]) if len(np.unique(factors[:, k])) > 1]
    normalised = codes[:, active] / scale[active]

    def votes(n: int) -> np.ndarray:
        out = np.zeros((normalised.shape[1], factors.shape[1]), dtype=np.int64)
        for _ in range(n):
            k = varying[rng.integers(len(varying))]
            value = factors[rng.integers(len(factors)), k]
            members = np.flatnonzero(factors[:, k] == value)
            chosen = rng.choice(members, size=group, replace=len(members) < group)
            out[np.argmin(normalised[chosen].var(axis=0)), k] += 1
        return out

    train, held = votes(train_votes), votes(eval_votes)
    guess = train.argmax(axis=1)
    correct_train = train[np.arange(len(guess)), guess].sum()
    correct_eval = held[np.arange(len(guess)), guess].sum()
    return {
        "train_accuracy": float(correct_train / train_votes),
        "eval_accuracy": float(correct_eval / eval_votes),
        "active_dims": int(active.sum()),
    }


def scores(
    codes: np.ndarray, factors: np.ndarray, names: Sequence[str], seed: int = 0
) -> Disentanglement:
    """MIG, DCI and the FactorVAE score of one model's codes (its posterior means)."""
    codes, factors = np.asarray(codes, np.float64), np.asarray(factors)
    gap, forests = mig(codes, factors), dci(codes, factors, seed)
    votes = factorvae_score(codes, factors, seed)
    return Disentanglement(
        factors=list(names),
        mig=gap["mig"],
        mig_per_factor=gap["per_factor"],
        dci_disentanglement=forests["disentanglement"],
        dci_completeness=forests["completeness"],
        dci_informativeness=forests["informativeness"],
        dci_informativeness_per_factor=forests["informativeness_per_factor"],
        factorvae_score=votes["eval_accuracy"],
        factorvae_train_accuracy=votes["train_accuracy"],
        factorvae_active_dims=votes["active_dims"],
        examples=len(codes),
    )
