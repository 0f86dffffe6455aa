"""The ``mlflow`` tracker: a local MLflow store (SQLite), no server, nothing over the network.

``--tracker-uri`` names the store: a folder (default: ``mlruns/`` beside the run folder;
a bench's: ``mlruns/`` in the bench's folder), which holds ``mlflow.db`` and the
artefacts in ``artifacts/``, or ``sqlite:///FILE.db`` (artefacts in ``FILE-artifacts/``).
A server's URI is refused. Open it with
``mlflow ui --backend-store-uri sqlite:///PATH/mlruns/mlflow.db``.

Runs go to an experiment named after the bench spec (``harness`` for a single run), one
MLflow run per bench row and seed. The run's id is kept in ``RUN/mlflow.json``, so a
resumed run reopens its MLflow run instead of starting a second one. MLflow's own
filesystem store is not used: MLflow 3 refuses it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from harness import ConfigError, hookimpl
from harness.io import atomic_write_json
from harness.tracking import TrackerSettings

#: the file in the run folder naming its MLflow run, for a resume
STATE = "mlflow.json"
#: the experiment of a run no bench started
DEFAULT_EXPERIMENT = "harness"
#: MLflow's run status for each of the harness's
STATUS = {"complete": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
#: MLflow's limits: parameter values (characters) and entries per log_batch call
MAX_VALUE, BATCH = 6000, 100


def store(uri: str | None, run_dir: Path) -> tuple[str, Path]:
    """The tracking URI and artefact folder of ``--tracker-uri`` (a folder or sqlite:///)."""
    if not uri:
        folder = Path(run_dir).resolve().parent / "mlruns"
    elif uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        db.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{db.resolve()}", db.resolve().with_name(f"{db.stem}-artifacts")
    elif urlparse(uri).scheme in ("", "file"):
        folder = Path(urlparse(uri).path if uri.startswith("file:") else uri).resolve()
    else:
        raise ConfigError(
            f"--tracker-uri {uri!r}: the mlflow tracker keeps a local store only "
            "(a folder or sqlite:///FILE.db), never a server"
        )
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts"


class MlflowTracker:
    """One MLflow run per harness run, through ``MlflowClient`` (no global active run, so
    runs of one process never cross)."""

    def __init__(self, settings: TrackerSettings):
        from mlflow.tracking import MlflowClient

        self.run_dir = Path(settings.run_dir)
        uri, artefacts = store(settings.uri, self.run_dir)
        self.client = MlflowClient(tracking_uri=uri)
        self.run_id = self._resumed(uri) if settings.resume else None
        if self.run_id is None:
            name = settings.group or DEFAULT_EXPERIMENT
            experiment = self.client.get_experiment_by_name(name)
            experiment_id = (
                experiment.experiment_id
                if experiment is not None
                else self.client.create_experiment(
                    name, artifact_location=(artefacts / name).as_uri()
                )
            )
            run = self.client.create_run(
                experiment_id,
                run_name=settings.name,
                tags={"harness.run_dir": str(self.run_dir.resolve())},
            )
            self.run_id = run.info.run_id
            atomic_write_json(
                self.run_dir / STATE,
                {"tracking_uri": uri, "experiment_id": experiment_id, "run_id": self.run_id},
            )

    def _resumed(self, uri: str) -> str | None:
        """The run id the interrupted attempt left, where it is in this store."""
        try:
            state = json.loads((self.run_dir / STATE).read_text())
        except (OSError, ValueError):
            return None
        if state.get("tracking_uri") != uri:
            return None
        self.client.update_run(state["run_id"], status="RUNNING")
        return str(state["run_id"])

    def log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_VALUE]) for k, v in params.items()]
        for start in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        for start in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, metrics=items[start : start + BATCH])

    def log_artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, STATUS.get(status, "FAILED"))


@hookimpl
def harness_register_trackers(registry):
    registry.add(
        "mlflow",
        MlflowTracker,
        "MLflow run in a local SQLite store (--tracker-uri; mlflow ui opens it)",
        requires="mlflow",
        install_hint="pip install 'crossres-harness[track]'",
    )
