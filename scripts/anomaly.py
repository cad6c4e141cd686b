"""Anomaly detection with vaekit against classical detectors, chosen on validation data.

    python scripts/anomaly.py --data-dir ../shared/data/mnist --json anomaly.json

One-class MNIST: the last `--validation` training images are held out (every class).
For each candidate likelihood and each digit d, a vaekit model trains on the remaining
training images of d alone (`--classes d --validation N`) and `vaekit score --split
validation` scores the held-out images; the other nine digits are the anomalies. The
candidate with the best mean validation AUROC of -log p(x) over `--choose-digits` is
chosen, and only its models score the test split, once. A table: scikit-learn's bundled
breast-cancer data (no download), benign as normal, the latent size chosen the same way
on the last `--table-validation` training rows. Beside each, on exactly the same inputs,
scikit-learn's IsolationForest, one-class SVM and PCA reconstruction error with fixed
settings (nothing chosen), fitted on the same training examples, scored on the same
validation and test examples. The figure is AUROC (1 = every anomaly scores above every
normal example; 0.5 = chance).

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
CHOSEN_BY = "vaekit_neg_log_px"
CANDIDATES = "bernoulli,gaussian:0.1,gaussian:0.2,gaussian:0.3"  # ANOMALY.md's run


def classical_scores(
    train: np.ndarray, parts: dict[str, np.ndarray], seed: int
) -> dict[str, dict[str, np.ndarray]]:
    """part -> detector -> scores (higher = more anomalous), each fitted on `train` alone."""
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(train)
    svm = OneClassSVM(kernel="rbf", gamma="scale", nu=0.1).fit(train)
    pca = PCA(n_components=0.9, svd_solver="full", random_state=seed).fit(train)
    out = {}
    for part, x in parts.items():
        recon = pca.inverse_transform(pca.transform(x))
        out[part] = {
            "isolation_forest": -forest.score_samples(x),
            "one_class_svm": -svm.decision_function(x),
            "pca_error": ((x - recon) ** 2).sum(axis=1),
        }
    return out


def vaekit_scores(
    run: Path, split: str, k: int, seed: int
) -> tuple[dict[str, np.ndarray], list[str]]:
    """`vaekit score --split SPLIT` of the run (every class), and the labels."""
    config = EvalConfig(k=k, seed=seed, fid=False, device="cpu")
    scores = vaekit.score_data(run, split=split, config=config, progress=False)
    found = {
        "vaekit_neg_log_px": scores.neg_log_px,
        "vaekit_neg_elbo": scores.neg_elbo,
        "vaekit_squared_error": scores.squared_error,
    }
    return found, scores.labels


def auroc(scores: dict[str, np.ndarray], anomalous: np.ndarray) -> dict[str, float]:
    return {name: float(roc_auc_score(anomalous, values)) for name, values in scores.items()}


def train_run(config: RunConfig, out: Path) -> Path:
    """Train into `out`, or reuse a finished run there (a rerun after an interruption)."""
    done = out / "metrics.jsonl"
    if done.is_file() and len(done.read_text().splitlines()) >= config.train.epochs:
        return out
    started = time.perf_counter()
    run = vaekit.train(config, out, log=lambda line: None, progress=False)
    print(f"  trained {out.name} in {time.perf_counter() - started:.1f} s", flush=True)
    return run


def parse_candidate(text: str) -> tuple[str, float]:
    """ "gaussian:0.2" -> ("gaussian", 0.2); "bernoulli" -> ("bernoulli", 0.1, unused)."""
    name, _, sigma = text.partition(":")
    return name, float(sigma or 0.1)


def mnist_config(args: argparse.Namespace, candidate: str, digit: int) -> RunConfig:
    likelihood, sigma = parse_candidate(candidate)
    config = RunConfig(
        model=model_config(
            "mlp",
            latent_dim=args.latent_dim,
            hidden_dim=args.hidden_dim,
            likelihood=likelihood,
            sigma=sigma,
        )
    )
    config.data = DataConfig(
        data_dir=args.data_dir, download=False, classes=str(digit), validation=args.validation
    )
    config.train.epochs, config.train.seed, config.train.device = args.epochs, args.seed, "cpu"
    config.train.pictures = config.train.plots = False
    return config


def mean_auroc(rows: dict[str, dict[str, float]], keys: list[str]) -> dict[str, float]:
    """Detector -> mean AUROC over the rows named by `keys`."""
    names = rows[keys[0]].keys()
    return {n: float(np.mean([rows[key][n] for key in keys])) for n in names}


def mnist_images(args: argparse.Namespace, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Every class's images of a split (flat, in [0, 1]) and their labels."""
    data = DataConfig(data_dir=args.data_dir, download=False, validation=args.validation)
    loaded = load_data(data, split)
    return to_unit(loaded.images).flatten(1).numpy(), loaded.labels.numpy()


def mnist_candidate(args: argparse.Namespace, work: Path, candidate: str, labels) -> dict:
    """Validation AUROC per digit of one candidate's ten models."""
    started, rows = time.perf_counter(), {}
    for digit in args.digits:
        run = train_run(mnist_config(args, candidate, digit), work / candidate / f"mnist-{digit}")
        kept = run / f"validation-auroc-k{args.k}.json"  # a rerun after an interruption
        if kept.is_file():
            rows[str(digit)] = json.loads(kept.read_text())
        else:
            found, seen = vaekit_scores(run, "validation", args.k, args.seed)
            assert seen == [str(v) for v in labels.tolist()]  # every class, not digit d alone
            rows[str(digit)] = auroc(found, labels != digit)
            kept.write_text(json.dumps(rows[str(digit)]) + "\n")
        print(f"{candidate}, digit {digit}: validation {rows[str(digit)]}", flush=True)
    keys = [str(d) for d in args.choose_digits]
    return {"auroc": rows, "mean": mean_auroc(rows, keys), "seconds": time.perf_counter() - started}


def classical_mnist(args: argparse.Namespace, parts: dict) -> dict[str, dict[str, dict]]:
    """part -> digit -> classical detector -> AUROC, fitted on each digit's training images."""
    out: dict[str, dict[str, dict]] = {part: {} for part in parts}
    for digit in args.digits:
        config = mnist_config(args, "bernoulli", digit)  # the data alone matters here
        x_train = to_unit(load_data(config.data, "train").images).flatten(1).numpy()
        found = classical_scores(x_train, {p: x for p, (x, _) in parts.items()}, args.seed)
        for part, (_, labels) in parts.items():
            out[part][str(digit)] = auroc(found[part], labels != digit)
        print(f"classical, digit {digit}: {out['test'][str(digit)]}", flush=True)
    return out


def one_class_mnist(args: argparse.Namespace, work: Path) -> dict:
    """Every candidate on validation, the chosen one and the classical detectors on test."""
    parts = {split: mnist_images(args, split) for split in ("validation", "test")}
    candidates = {}
    for candidate in args.candidates:
        candidates[candidate] = mnist_candidate(args, work, candidate, parts["validation"][1])
    chosen = max(candidates, key=lambda c: candidates[c]["mean"][CHOSEN_BY])
    print(f"chosen on validation: {chosen}", flush=True)
    mark = time.perf_counter()
    classical = classical_mnist(args, parts)
    classical_seconds, mark = time.perf_counter() - mark, time.perf_counter()
    test = {}
    for digit in args.digits:
        run = work / chosen / f"mnist-{digit}"
        found, seen = vaekit_scores(run, "test", args.k, args.seed)
        assert seen == [str(v) for v in parts["test"][1].tolist()]
        test[str(digit)] = auroc(found, parts["test"][1] != digit) | classical["test"][str(digit)]
    for digit, row in classical["validation"].items():
        candidates[chosen]["auroc"][digit] |= row  # the classical detectors beside the chosen
    return {
        "candidates": candidates,
        "classical_validation": classical["validation"],
        "chosen": chosen,
        "test_auroc": test,
        "seconds": {"classical": classical_seconds, "test_score": time.perf_counter() - mark},
        "settings": mnist_settings(args),
    }


def mnist_settings(args: argparse.Namespace) -> dict:
    return {
        "model": f"mlp, latent {args.latent_dim}, hidden {args.hidden_dim}",
        "validation": args.validation,
        "choose_digits": args.choose_digits,
        "chosen_by": f"mean validation AUROC of {CHOSEN_BY}",
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


def table_config(args: argparse.Namespace, data: DataConfig, latent: int, seed: int) -> RunConfig:
    config = RunConfig(
        model=model_config("mlp", latent_dim=latent, hidden_dim=64, likelihood="mixed")
    )
    config.data = data
    config.train.epochs, config.train.batch_size = args.table_epochs, 32
    config.train.seed, config.train.device = seed, "cpu"
    config.train.pictures = config.train.plots = False
    return config


def table_seed(
    args: argparse.Namespace, data: DataConfig, run: Path, seed: int, splits: tuple[str, ...]
) -> dict:
    """AUROC on `splits` of one table run and of the classical detectors."""
    model = vaekit.load(run, "cpu")
    every = dataclasses.replace(data, classes=None)
    # the vectors the model saw: benign training rows, standardised by its transform
    x_train = load_data(data, "train", transform=model.data_transform).images.flatten(1).numpy()
    parts, out = {}, {}
    for split in splits:
        rows = load_data(every, split, transform=model.data_transform)
        parts[split] = rows.images.flatten(1).numpy()
        found, labels = vaekit_scores(run, split, args.k, seed)
        assert labels == [rows.names[c] for c in rows.labels.tolist()]
        out[split] = (found, np.array([label == "malignant" for label in labels]))
    classical = classical_scores(x_train, parts, seed)
    result = {split: auroc(found | classical[split], bad) for split, (found, bad) in out.items()}
    result["rows"] = {
        "train_benign": len(x_train),
        **{split: len(bad) for split, (_, bad) in out.items()},
        **{f"{split}_malignant": int(bad.sum()) for split, (_, bad) in out.items()},
    }
    return result


def breast_cancer(args: argparse.Namespace, work: Path) -> dict:
    """Per latent size and seed, validation and test AUROC; the latent size chosen on the
    mean validation AUROC of -log p(x) over the seeds."""
    table = write_breast_cancer(work / "breast_cancer.csv")
    data = DataConfig(
        dataset=f"csv:{table}",
        label_column="diagnosis",
        classes="benign",
        test_fraction=0.4,
        validation=args.table_validation,
    )
    candidates, runs = {}, {}
    for latent in args.table_latents:
        per_seed = []
        for seed in range(args.table_seeds):
            config = table_config(args, data, latent, seed)
            runs[latent, seed] = train_run(config, work / f"breast-cancer-latent{latent}-{seed}")
            per_seed.append(table_seed(args, data, runs[latent, seed], seed, ("validation",)))
            print(f"breast cancer, latent {latent}, seed {seed}: {per_seed[-1]}", flush=True)
        mean = np.mean([row["validation"][CHOSEN_BY] for row in per_seed])
        candidates[str(latent)] = {"validation_mean": float(mean), "per_seed": per_seed}
    chosen = max(candidates, key=lambda c: candidates[c]["validation_mean"])
    for seed, row in enumerate(candidates[chosen]["per_seed"]):  # the test rows, once
        tested = table_seed(args, data, runs[int(chosen), seed], seed, ("test",))
        row["test"], row["rows"] = tested["test"], row["rows"] | tested["rows"]
    return {"candidates": candidates, "chosen_latent": chosen}


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        lines = lscpu.splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if "Model name" in line)
    except (OSError, subprocess.SubprocessError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return model


def table_lines(rows: dict[str, dict[str, float]], names: tuple[str, ...], key: str) -> list[str]:
    """A markdown table of AUROC, one row per digit and their mean, the best in bold."""
    lines = [f"| {key} | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for digit, row in rows.items():
        best = max(row[n] for n in names)
        cells = [f"**{row[n]:.4f}**" if row[n] == best else f"{row[n]:.4f}" for n in names]
        lines.append(f"| {digit} | " + " | ".join(cells) + " |")
    means = mean_auroc(rows, list(rows))
    return [*lines, "| **mean** | " + " | ".join(f"{means[n]:.4f}" for n in names) + " |"]


def markdown(report: dict) -> str:
    """The tables of ANOMALY.md: candidates on validation, the chosen one on test."""
    mnist = report["mnist"]
    lines = ["Validation AUROC of -log p(x), per candidate (mean over the chosen digits):", ""]
    lines += ["| candidate | mean | " + " | ".join(mnist["test_auroc"]) + " |"]
    lines += ["|---" * (len(mnist["test_auroc"]) + 2) + "|"]
    for name, found in mnist["candidates"].items():
        cells = [f"{row[CHOSEN_BY]:.4f}" for row in found["auroc"].values()]
        lines.append(f"| {name} | {found['mean'][CHOSEN_BY]:.4f} | " + " | ".join(cells) + " |")
    chosen = mnist["chosen"]
    lines += ["", f"Validation, chosen {chosen}:", ""]
    lines += table_lines(mnist["candidates"][chosen]["auroc"], (*VAEKIT, *CLASSICAL), "digit")
    lines += ["", f"Test, chosen {chosen} (scored once):", ""]
    lines += table_lines(mnist["test_auroc"], (*VAEKIT, *CLASSICAL), "digit")
    if "breast_cancer" in report:
        lines += ["", *breast_cancer_lines(report["breast_cancer"])]
    return "\n".join(lines) + "\n"


def breast_cancer_lines(table: dict) -> list[str]:
    names = (*VAEKIT, *CLASSICAL)
    lines = ["| latent | split | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for latent, found in table["candidates"].items():
        for split in (
            ("validation", "test") if latent == table["chosen_latent"] else ("validation",)
        ):
            values = {n: [row[split][n] for row in found["per_seed"]] for n in names}
            cells = [f"{np.mean(v):.4f} ± {np.std(v):.4f}" for v in values.values()]
            lines.append(f"| {latent} | {split} | " + " | ".join(cells) + " |")
    return [*lines, "", f"chosen latent size: {table['chosen_latent']}"]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder of MNIST's IDX files")
    parser.add_argument("--work-dir", default="anomaly-runs", help="run folders go here")
    parser.add_argument("--digits", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--choose-digits", help="digits the choice averages over (all)")
    parser.add_argument("--candidates", default=CANDIDATES, help="likelihood[:sigma],...")
    parser.add_argument("--validation", type=int, default=10000, help="held-out MNIST images")
    parser.add_argument("--epochs", type=int, default=30, help="per one-class MNIST model")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: steady on a shared machine)"
    )
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--hidden-dim", type=int, default=400)
    parser.add_argument("-k", "--k", type=int, default=100, help="importance samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table-epochs", type=int, default=300)
    parser.add_argument("--table-seeds", type=int, default=5)
    parser.add_argument("--table-latents", default="2,4,8", help="latent sizes to choose from")
    parser.add_argument("--table-validation", type=int, default=100, help="held-out rows")
    parser.add_argument("--json", default="anomaly.json")
    parser.add_argument("--markdown", default="anomaly.md")
    args = parser.parse_args()
    args.digits = [int(d) for d in args.digits.split(",")]
    args.choose_digits = [int(d) for d in (args.choose_digits or "").split(",") if d] or args.digits
    args.candidates = args.candidates.split(",")
    args.table_latents = [int(d) for d in args.table_latents.split(",")]
    return args


def main() -> None:
    args = parse()
    threads.configure(args.threads)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = {
        "machine": machine(),
        "vaekit": vaekit.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    if args.table_seeds:  # 0: one-class MNIST alone
        report["breast_cancer"] = breast_cancer(args, work)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    report["mnist"] = one_class_mnist(args, work)
    report["seconds"] = time.perf_counter() - started
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    Path(args.markdown).write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
