"""A run folder: the one module that knows its file names and formats.

    config.json               the resolved configuration (RunConfig as JSON)
    metrics.jsonl             one JSON record per finished epoch
    checkpoint.safetensors    weights, optimiser and RNG state, progress (`vaekit.checkpoint`)
    eval.json                 the last `vaekit evaluate` (`vaekit.evaluation.result`)
    .training.lock            held (flock) by the process training here (`vaekit.runlock`)
    samples.png, reconstructions.png, the plots, report.html, explorer/
    samples.csv               a table run's samples, rows in the original units
    tensorboard/, mlruns/, mlflow-run-id   the experiment trackers' files (`vaekit.tracking`)

A model folder (`vaekit export --format folder`, the Hugging Face Hub's layout)
holds config.json, model.safetensors (weights only) and README.md (a model card).

Every other module asks a `RunFolder` for a path or a record instead of
spelling a file name, so the layout can change in one place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vaekit.config import RunConfig
from vaekit.errors import ConfigError
from vaekit.evaluation.result import EvalResult
from vaekit.files import remove_stale_temporaries, write_atomic

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.safetensors"
BEST = "best.safetensors"  # weights of the epoch with the lowest monitored loss
PERIODIC = "checkpoint-epoch-{epoch:04d}.safetensors"  # --keep-every N
EVAL = "eval.json"
LOCK = ".training.lock"
REPORT = "report.html"
SAMPLES = "samples.png"
SAMPLES_CSV = "samples.csv"
RECONSTRUCTIONS = "reconstructions.png"
EXPLORER = "explorer"
LOSS_CURVES = "loss_curves.png"
LATENT_MANIFOLD = "latent_manifold.png"
LATENT_SCATTER = "latent_scatter.png"
INTERPOLATIONS = "interpolations.png"
TRAVERSAL = "traversal.png"  # one row per latent dimension (`vaekit evaluate`, factor data)
TENSORBOARD = "tensorboard"
MLRUNS = "mlruns"
MLFLOW_RUN = "mlflow-run-id"
MODEL_WEIGHTS = "model.safetensors"
MODEL_CARD = "README.md"


def checkpoint_file(path: str | Path) -> Path:
    """A run folder's checkpoint (a model folder's weights), or `path` when it names a file."""
    path = Path(path)
    if not path.is_dir():
        return path
    shared = path / MODEL_WEIGHTS
    return shared if shared.is_file() and not (path / CHECKPOINT).is_file() else path / CHECKPOINT


class RunFolder:
    """The files of one run, at `path` (which need not exist yet)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK

    @property
    def eval_path(self) -> Path:
        return self.path / EVAL

    @property
    def report_path(self) -> Path:
        return self.path / REPORT

    def holds_run(self) -> bool:
        return self.checkpoint.is_file()

    def require_run(self) -> RunFolder:
        """self, or ConfigError when there is no checkpoint here."""
        if not self.holds_run():
            raise ConfigError(f"{self.path} is not a vaekit run folder (no {CHECKPOINT})")
        return self

    def create(self) -> RunFolder:
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def remove_debris(self) -> None:
        """Temporary files of writes cut short by a crash (call while holding the lock)."""
        for name in (CONFIG, METRICS, CHECKPOINT, EVAL):
            remove_stale_temporaries(self.path / name)

    def write_config(self, config: RunConfig) -> Path:
        return write_atomic(self.config_path, config.to_json())

    def read_config(self) -> dict[str, Any]:
        """config.json as written (a dict: readers that only show it need no validation)."""
        try:
            return json.loads(self.config_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{self.config_path} cannot be read: {exc}") from None

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Add one epoch's record (a torn last line left by a crash is mended once, when
        the run is resumed: `repair_metrics`)."""
        with open(self.metrics_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every complete record of metrics.jsonl ([] when absent); a torn last line is
        skipped, a damaged line elsewhere is an error naming it."""
        if not self.metrics_path.is_file():
            return []
        lines = self.metrics_path.read_text().split("\n")
        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if number == len(lines):  # no newline after it: a write cut short
                    break
                raise ConfigError(f"{self.metrics_path}, line {number}: not JSON") from None
        return records

    def repair_metrics(self, epochs: int | None = None) -> None:
        """Drop a torn last line and, given `epochs`, records past the checkpoint's epoch
        (written after the checkpoint a resume starts from)."""
        if not self.metrics_path.is_file():
            return
        records = self.read_metrics()
        if epochs is not None:
            records = [r for r in records if r.get("epoch", 0) <= epochs]
        text = "".join(json.dumps(r) + "\n" for r in records)
        if text != self.metrics_path.read_text():
            write_atomic(self.metrics_path, text)

    def write_eval(self, result: EvalResult, path: str | Path | None = None) -> Path:
        """eval.json (or `path`) from a result; returns where it went."""
        out = Path(path) if path is not None else self.eval_path
        out.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(out, json.dumps(result.to_dict(), indent=2) + "\n")

    def read_eval(self, path: str | Path | None = None) -> EvalResult | None:
        """The stored evaluation, or None when the run was not evaluated."""
        source = Path(path) if path is not None else self.eval_path
        if not source.is_file():
            return None
        return EvalResult.from_dict(json.loads(source.read_text()))
