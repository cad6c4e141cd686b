"""`--log mlflow`: the resolved config as params, each epoch's metrics, and at the end the
run folder's pictures, report, config, metrics and checkpoint as artifacts.

The store is `--log-uri` (any MLflow tracking URI), else a local file store in
RUN_DIR/mlruns (`mlflow ui --backend-store-uri RUN_DIR/mlruns`); MLflow 3 keeps
file stores only when MLFLOW_ALLOW_FILE_STORE is set, which this logger sets for
file URIs. The MLflow run's id is kept in RUN_DIR/mlflow-run-id, so a resumed run
keeps logging to the same MLflow run (params it already has are not re-logged;
a changed one, such as a longer --epochs, becomes the tag resumed.<param>).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from vaekit import runfolder
from vaekit.config import RunConfig
from vaekit.extras import require
from vaekit.files import write_atomic
from vaekit.models import VAE
from vaekit.runfolder import MLFLOW_RUN, MLRUNS, RunFolder
from vaekit.tracking.measures import Probe, scalars

EXPERIMENT = "vaekit"
ARTIFACTS = (
    runfolder.CONFIG,
    runfolder.METRICS,
    runfolder.CHECKPOINT,
    runfolder.SAMPLES,
    runfolder.RECONSTRUCTIONS,
    runfolder.LOSS_CURVES,
    runfolder.LATENT_MANIFOLD,
    runfolder.LATENT_SCATTER,
    runfolder.INTERPOLATIONS,
    runfolder.REPORT,
)


def flat_params(config: RunConfig) -> dict[str, str]:
    """The config as MLflow params: "section.field" -> the value as text."""
    return {
        f"{section}.{name}": str(value)
        for section, values in config.to_dict().items()
        for name, value in values.items()
    }


class MlflowLogger:
    """One MLflow run per vaekit run, continued across resumes."""

    def __init__(self, config: RunConfig, run_dir: Path) -> None:
        require("mlflow", "mlflow", "--log mlflow")
        self.config, self.folder = config, RunFolder(run_dir)
        self.uri = config.train.tracking_uri or self.folder.file(MLRUNS).resolve().as_uri()
        self.probe = Probe(config)
        self.client: Any = None  # connected at the first epoch: a failed start logs nothing
        self.run_id = ""
        self.last_epoch = 0

    def _start(self) -> None:
        if self.uri.startswith("file:") or "://" not in self.uri:
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri)
        id_file = self.folder.file(MLFLOW_RUN)
        self.run_id = id_file.read_text().strip() if id_file.is_file() else ""
        try:
            known = self.client.get_run(self.run_id).data.params if self.run_id else None
        except MlflowException:  # another store than the one the run first logged to
            known = None
        if known is None:
            found = self.client.get_experiment_by_name(EXPERIMENT)
            experiment = found.experiment_id if found else self.client.create_experiment(EXPERIMENT)
            run = self.client.create_run(experiment, run_name=self.folder.path.name)
            self.run_id, known = run.info.run_id, {}
            write_atomic(id_file, self.run_id + "\n")
        else:
            self.client.update_run(self.run_id, "RUNNING")
        self._log_params(known)

    def _log_params(self, known: dict[str, str]) -> None:
        from mlflow.entities import Param, RunTag

        params = flat_params(self.config)
        new = [Param(k, v) for k, v in params.items() if k not in known]
        changed = [RunTag(f"resumed.{k}", v) for k, v in params.items() if known.get(k, v) != v]
        tags = [RunTag("vaekit.run_dir", str(self.folder.path.resolve())), *changed]
        for start in range(0, max(len(new), 1), 100):  # MLflow takes 100 params per batch
            self.client.log_batch(self.run_id, params=new[start : start + 100], tags=tags)
            tags = []

    def on_epoch(self, record: dict[str, Any], model: VAE, run_dir: Path) -> None:
        from mlflow.entities import Metric

        if self.client is None:
            self._start()
        step, stamp = int(record["epoch"]), int(time.time() * 1000)
        values = scalars(record)
        for group, kl in enumerate(self.probe.kl_per_group(model)):
            values[f"probe_kl_group_{group}"] = kl
        metrics = [Metric(key, value, stamp, step) for key, value in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)
        self.last_epoch = step

    def close(self, run_dir: Path) -> None:
        """Upload the run folder's files; FINISHED when all epochs ran, else KILLED
        (stopped or failed; a resume continues the same MLflow run)."""
        if self.client is None:
            return
        for name in ARTIFACTS:
            if self.folder.file(name).is_file():
                self.client.log_artifact(self.run_id, str(self.folder.file(name)))
        done = self.last_epoch >= self.config.train.epochs
        self.client.set_terminated(self.run_id, "FINISHED" if done else "KILLED")
        self.client = None
