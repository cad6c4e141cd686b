"""Anomaly detection with vaekit against classical detectors, measured in one run.

    python scripts/anomaly.py --data-dir ../shared/data/mnist --markdown anomaly.md

One-class MNIST: for each digit, a vaekit model is trained on that digit's training
images alone (`--classes D`) and `vaekit score` scores the whole test set; the
anomalies are the other nine digits. A table: scikit-learn's bundled breast-cancer
data (no download), benign as normal; the models train on benign training rows and
score every test row. Beside each, on exactly the same inputs, scikit-learn's
IsolationForest, one-class SVM and PCA reconstruction error. The figure is AUROC
(1 = every anomaly scores above every normal example; 0.5 = chance).

Needs scikit-learn (`pip install 'vaekit[anomaly]'`); vaekit itself does not.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.svm import OneClassSVM

import vaekit
from vaekit import threads
from vaekit.config import DataConfig, EvalConfig, RunConfig, model_config
from vaekit.data import load_data, to_unit

CLASSICAL = ("isolation_forest", "one_class_svm", "pca_error")
VAEKIT = ("vaekit_neg_log_px", "vaekit_neg_elbo", "vaekit_squared_error")


def classical_scores(train: np.ndarray, test: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Higher = more anomalous, for each classical detector fitted on `train` alone."""
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(train)
    svm = OneClassSVM(kernel="rbf", gamma="scale", nu=0.1).fit(train)
    pca = PCA(n_components=0.9, svd_solver="full", random_state=seed).fit(train)
    recon = pca.inverse_transform(pca.transform(test))
    return {
        "isolation_forest": -forest.score_samples(test),
        "one_class_svm": -svm.decision_function(test),
        "pca_error": ((test - recon) ** 2).sum(axis=1),
    }


def vaekit_scores(run: Path, k: int, seed: int) -> tuple[dict[str, np.ndarray], list[str]]:
    """`vaekit score` of the run's whole test split (every class), and its labels."""
    config = EvalConfig(k=k, seed=seed, fid=False, device="cpu")
    scores = vaekit.score_data(run, config=config, progress=False)
    found = {
        "vaekit_neg_log_px": scores.neg_log_px,
        "vaekit_neg_elbo": scores.neg_elbo,
        "vaekit_squared_error": scores.squared_error,
    }
    return found, scores.labels


def auroc(scores: dict[str, np.ndarray], anomalous: np.ndarray) -> dict[str, float]:
    return {name: float(roc_auc_score(anomalous, values)) for name, values in scores.items()}


def train_run(config: RunConfig, out: Path) -> Path:
    started = time.perf_counter()
    run = vaekit.train(config, out, log=lambda line: None, progress=False)
    print(f"  trained {out.name} in {time.perf_counter() - started:.1f} s", flush=True)
    return run


def mnist_config(args: argparse.Namespace, digit: int) -> RunConfig:
    config = RunConfig(
        model=model_config(
            "mlp",
            latent_dim=args.latent_dim,
            hidden_dim=args.hidden_dim,
            likelihood=args.likelihood,
            sigma=args.sigma,
        )
    )
    config.data = DataConfig(data_dir=args.data_dir, download=False, classes=str(digit))
    config.train.epochs, config.train.seed, config.train.device = args.epochs, args.seed, "cpu"
    config.train.pictures = config.train.plots = False
    return config


def one_class_mnist(args: argparse.Namespace, work: Path) -> dict:
    """AUROC per digit and detector, and seconds per part."""
    rows, seconds = {}, {"vaekit_train": 0.0, "vaekit_score": 0.0, "classical": 0.0}
    test = load_data(DataConfig(data_dir=args.data_dir, download=False), "test")
    x_test = to_unit(test.images).flatten(1).numpy()
    for digit in args.digits:
        mark = time.perf_counter()
        config = mnist_config(args, digit)
        run = train_run(config, work / f"mnist-{digit}")
        seconds["vaekit_train"] += time.perf_counter() - mark
        mark = time.perf_counter()
        found, labels = vaekit_scores(run, args.k, args.seed)
        seconds["vaekit_score"] += time.perf_counter() - mark
        assert labels == [str(v) for v in test.labels.tolist()]  # the same test set
        mark = time.perf_counter()
        train = load_data(config.data, "train")
        x_train = to_unit(train.images).flatten(1).numpy()
        found |= classical_scores(x_train, x_test, args.seed)
        seconds["classical"] += time.perf_counter() - mark
        rows[str(digit)] = auroc(found, (test.labels != digit).numpy())
        shown = ", ".join(f"{name} {value:.4f}" for name, value in rows[str(digit)].items())
        print(f"digit {digit}: {shown}", flush=True)
    return {"auroc": rows, "seconds": seconds, "settings": mnist_settings(args)}


def mnist_settings(args: argparse.Namespace) -> dict:
    return {
        "model": f"mlp, latent {args.latent_dim}, hidden {args.hidden_dim}",
        "likelihood": f"{args.likelihood}, sigma {args.sigma}",
        "threads": args.threads,
        "epochs": args.epochs,
        "k": args.k,
        "seed": args.seed,
    }


def write_breast_cancer(path: Path) -> Path:
    """scikit-learn's bundled copy (569 rows, 30 measurements), diagnosis as a label."""
    data = load_breast_cancer()
    names = [name.replace(" ", "_") for name in data.feature_names]
    diagnosis = np.asarray(data.target_names)[data.target]
    with open(path, "w") as handle:
        handle.write(",".join([*names, "diagnosis"]) + "\n")
        for values, label in zip(data.data, diagnosis, strict=True):
            handle.write(",".join([*(repr(float(v)) for v in values), label]) + "\n")
    return path


def breast_cancer(args: argparse.Namespace, work: Path) -> dict:
    """AUROC of malignant (anomaly) against benign (normal), per seed and detector."""
    table = write_breast_cancer(work / "breast_cancer.csv")
    data = DataConfig(
        dataset=f"csv:{table}", label_column="diagnosis", classes="benign", test_fraction=0.4
    )
    per_seed = []
    for seed in range(args.table_seeds):
        config = RunConfig(
            model=model_config("mlp", latent_dim=4, hidden_dim=64, likelihood="mixed")
        )
        config.data = data
        config.train.epochs, config.train.batch_size = args.table_epochs, 32
        config.train.seed, config.train.device = seed, "cpu"
        config.train.pictures = config.train.plots = False
        run = train_run(config, work / f"breast-cancer-{seed}")
        found, labels = vaekit_scores(run, args.k, seed)
        model = vaekit.load(run, "cpu")
        # the vectors the model saw: benign training rows, standardised by its transform
        train = load_data(data, "train", transform=model.data_transform)
        every = dataclasses.replace(data, classes=None)
        test = load_data(every, "test", transform=model.data_transform)
        assert labels == [test.names[c] for c in test.labels.tolist()]
        x_train, x_test = (s.images.flatten(1).numpy() for s in (train, test))
        found |= classical_scores(x_train, x_test, seed)
        anomalous = np.array([label == "malignant" for label in labels])
        per_seed.append(auroc(found, anomalous))
        print(f"breast cancer, seed {seed}: {per_seed[-1]}", flush=True)
    counts = {"train_benign": len(train), "test": len(test), "test_malignant": int(anomalous.sum())}
    return {"per_seed": per_seed, "rows": counts}


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        lines = lscpu.splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if "Model name" in line)
    except (OSError, subprocess.SubprocessError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return model


def markdown(report: dict) -> str:
    """The two tables of ANOMALY.md."""
    mnist = report["mnist"]["auroc"]
    names = (*VAEKIT, *CLASSICAL)
    lines = ["| digit | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for digit, row in mnist.items():
        best = max(row.values())
        cells = [f"**{row[n]:.4f}**" if row[n] == best else f"{row[n]:.4f}" for n in names]
        lines.append(f"| {digit} | " + " | ".join(cells) + " |")
    means = {n: np.mean([row[n] for row in mnist.values()]) for n in names}
    lines.append("| **mean** | " + " | ".join(f"{means[n]:.4f}" for n in names) + " |")
    if "breast_cancer" not in report:
        return "\n".join(lines) + "\n"
    table = report["breast_cancer"]["per_seed"]
    lines += ["", "| detector | AUROC, mean ± std over seeds |", "|---|---|"]
    for n in names:
        values = [row[n] for row in table]
        lines.append(f"| {n} | {np.mean(values):.4f} ± {np.std(values):.4f} |")
    return "\n".join(lines) + "\n"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder of MNIST's IDX files")
    parser.add_argument("--work-dir", default="anomaly-runs", help="run folders go here")
    parser.add_argument("--digits", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--epochs", type=int, default=30, help="per one-class MNIST model")
    parser.add_argument("--likelihood", default="gaussian", help="of the MNIST models")
    parser.add_argument("--sigma", type=float, default=0.2, help="of the MNIST models")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: steady on a shared machine)"
    )
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--hidden-dim", type=int, default=400)
    parser.add_argument("-k", "--k", type=int, default=100, help="importance samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table-epochs", type=int, default=300)
    parser.add_argument("--table-seeds", type=int, default=5)
    parser.add_argument("--json", default="anomaly.json")
    parser.add_argument("--markdown", default="anomaly.md")
    args = parser.parse_args()
    args.digits = [int(d) for d in args.digits.split(",")]
    return args


def main() -> None:
    args = parse()
    threads.configure(args.threads)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = {"machine": machine(), "vaekit": vaekit.__version__}
    report["mnist"] = one_class_mnist(args, work)
    if args.table_seeds:  # 0: one-class MNIST alone
        report["breast_cancer"] = breast_cancer(args, work)
    report["seconds"] = time.perf_counter() - started
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    Path(args.markdown).write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
