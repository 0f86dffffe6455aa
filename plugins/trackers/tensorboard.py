"""The ``tensorboard`` tracker: event files in ``RUN/tb/``, read by ``tensorboard --logdir``.

torch's own ``SummaryWriter`` writes them (tensorboard is installed with torchreid), so it
needs nothing more. A bench's runs each write their own ``tb/`` in their own folder, so
``tensorboard --logdir runs/bench/SPEC`` shows every row side by side, grouped under the spec.
A resumed run appends to the same folder (a new event file, steps after the old ones).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from harness import hookimpl
from harness.tracking import TrackerSettings

#: the folder inside the run folder that holds the event files
FOLDER = "tb"


class TensorBoardTracker:
    """Scalars per log step, the config as a text table, figures as images."""

    def __init__(self, settings: TrackerSettings):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(settings.run_dir) / FOLDER))

    def log_params(self, params: Mapping[str, str]) -> None:
        rows = "\n".join(f"| {k} | {v} |" for k, v in params.items())
        self.writer.add_text("config", f"| setting | value |\n|---|---|\n{rows}", 0)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)

    def log_artifact(self, path: Path) -> None:
        path = Path(path)
        if path.suffix == ".png":
            from PIL import Image

            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            self.writer.add_image(f"artefacts/{path.stem}", pixels, 0, dataformats="HWC")
        else:
            self.writer.add_text(f"artefacts/{path.name}", f"    {path.read_text()[:20000]}", 0)

    def close(self, status: str) -> None:
        self.writer.add_text("status", status, 0)
        self.writer.close()


@hookimpl
def harness_register_trackers(registry):
    registry.add(
        "tensorboard",
        TensorBoardTracker,
        "TensorBoard event files in RUN/tb/ (tensorboard --logdir RUN)",
    )
