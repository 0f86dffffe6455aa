"""The plugin contract.

Built-in plugins implement exactly these hooks, registered through the same
entry-point group (``harness.plugins``) a third-party package uses. Each
registration hook receives a :class:`~harness.registrars.KindRegistry` (typed
per kind: :class:`~harness.registrars.DatasetRegistry`,
:class:`~harness.registrars.WeightsRegistry`) and adds named factories with
``registry.add(name, factory, summary, options=...)``; which hook fills which
kind is the table :data:`harness.kinds.KINDS`.
An implementation may accept fewer arguments than its spec, so specs can grow
without breaking plugins.
"""

from __future__ import annotations

from typing import Any

import pluggy

from harness.registrars import DatasetRegistry, KindRegistry, TrackerRegistry, WeightsRegistry

PROJECT_NAME = "harness"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --------------------------------------------------------------------------
# Registration: called once at start-up, one call per plugin.
# --------------------------------------------------------------------------


@hookspec
def harness_register_sr(registry: KindRegistry) -> None:
    """Register super-resolution models.

    A factory takes the :class:`~harness.RunConfig` and returns an ``nn.Module``
    whose ``forward(x_lr, out_size)`` maps a float RGB batch in [0, 1] to a
    batch of size ``out_size`` (H, W). Batches are bucketed by input size, so a
    model may upscale natively for integer factors and must handle any factor.

    :param registry: add factories with ``registry.add(name, factory, summary)``.

    Example::

        @hookimpl
        def harness_register_sr(registry):
            registry.add("bicubic", lambda config: Bicubic(), "bicubic upsampling, no learning")
    """


@hookspec
def harness_register_discriminators(registry: KindRegistry) -> None:
    """Register GAN discriminators.

    A factory takes the RunConfig and returns a module mapping an image batch
    to ``(logit, f_d)``: a ``[B]`` real/fake logit and ``f_d`` the ``[B, D]``
    penultimate feature that association critics read.

    :param registry: add factories with ``registry.add(name, factory, summary)``.

    Example::

        @hookimpl
        def harness_register_discriminators(registry):
            registry.add("patch", lambda config: PatchD(), "a PatchGAN discriminator")
    """


@hookspec
def harness_register_reid(registry: KindRegistry) -> None:
    """Register re-id models.

    A factory takes ``(config, num_classes)`` and returns a module that gives
    ``(logits, f_c)`` in training mode and ``f_c`` in eval mode (torchreid's
    contract); inputs are float RGB in [0, 1], normalisation is the model's
    job. A registry may also resolve names it was not given explicitly (timm's
    whole zoo) with ``registry.add_resolver(resolver, summary)``.

    :param registry: add factories with ``registry.add(name, factory, summary)``.

    Example::

        @hookimpl
        def harness_register_reid(registry):
            registry.add("tiny", lambda config, num_classes: TinyNet(num_classes), "a tiny CNN")
    """


@hookspec
def harness_register_regularisers(registry: KindRegistry) -> None:
    """Register regularisers (training schedules of Algorithm 1).

    A factory takes the RunConfig and returns a :class:`~harness.Regulariser`,
    which builds its own modules (D, phi, sigma, ...) and declares its
    ordered :class:`~harness.Step` list. Declare tunable weights as options so
    ``harness list --verbose`` shows their defaults and ``-o key=value`` sets them.

    :param registry: add factories with ``registry.add(name, factory, summary, options)``.

    Example::

        @hookimpl
        def harness_register_regularisers(registry):
            registry.add(
                "none", NoneReg, "MSE + ID", options={"lambda_c": Option(0.1, "ID weight")}
            )
    """


@hookspec
def harness_register_datasets(registry: DatasetRegistry) -> None:
    """Register datasets.

    A factory takes ``(root, config)``, ``root`` the folder named by
    ``--data-root`` (``None`` for generated data), and returns a
    :class:`~harness.ReidDataset`. It must never download and never write
    into ``root``; a missing or malformed folder raises
    :class:`~harness.DatasetError` saying what was expected.

    :param registry: add factories with ``registry.add(name, factory, summary)``;
        ``write_layout=`` (keyword) adds a writer of the dataset's images in official
        folder layouts (:class:`harness.registrars.LayoutWriter`), as the synthetic one has.

    Example::

        @hookimpl
        def harness_register_datasets(registry):
            registry.add("mydata", lambda root, config: read_my_layout(root), "my camera network")
    """


@hookspec
def harness_register_weights(registry: WeightsRegistry) -> None:
    """Register sources of pretrained backbone weights found on this machine.

    A source is an object with ``tier`` (``"cache"``: a library's own download
    cache; ``"package"``: an installed package carrying the file), an
    ``install_hint``, and ``serves(backbone)``, ``find(backbone) -> Path | None``,
    ``expected_sha256(backbone, path)`` and ``read(path) -> state_dict``
    (:class:`harness.pretrained.WeightSource`). ``find`` must never download.
    ``--reid-init imagenet`` takes the first source, in tier order, that finds a
    file; the harness checks its sha256 and converts it to the backbone's layout.
    :class:`harness.PackagedWeights` covers the common case of a file in a package.

    :param registry: add sources with ``registry.add(name, source, summary)``.

    Example::

        @hookimpl
        def harness_register_weights(registry):
            registry.add("resnet50-mypkg", PackagedWeights(
                backbones=("resnet50",), package="my_weights", file="r50.pth",
                sha256="...", install_hint="pip install my-weights"), "ResNet-50 ImageNet")
    """


@hookspec
def harness_register_launchers(registry: KindRegistry) -> None:
    """Register launchers: how ``harness bench --launcher NAME`` runs a grid's runs.

    A factory takes a :class:`harness.launch.LaunchSettings` (``jobs``, ``threads``
    and ``gpus`` per run, the launcher's own typed ``options``, ``out_dir``) and
    returns an object with ``submit(job) -> concurrent.futures.Future`` and
    ``close(cancel=False)``. ``submit`` hands the run to an existing engine (a
    process pool, Ray, Slurm, Kubernetes), which calls
    :func:`harness.launch.execute` with the :class:`~harness.launch.RunJob` where it
    runs; the future's result is the :class:`~harness.launch.JobOutcome` it returns.
    Import the engine inside the factory, so the harness starts without it. The
    harness decides what may start (shared stages first), retries and reports.

    :param registry: add factories with ``registry.add(name, factory, summary, options)``;
        options are set with ``harness bench -L key=value``.

    Example::

        @hookimpl
        def harness_register_launchers(registry):
            registry.add("threads", lambda settings: ThreadLauncher(settings.jobs),
                         "runs in a thread pool", options={"nice": Option(0, "niceness")})

        class ThreadLauncher:
            def __init__(self, jobs):
                self.pool = concurrent.futures.ThreadPoolExecutor(jobs or 1)
            def submit(self, job):
                return self.pool.submit(harness.launch.execute, job)
            def close(self, cancel=False):
                self.pool.shutdown(cancel_futures=cancel)
    """


@hookspec
def harness_register_trackers(registry: TrackerRegistry) -> None:
    """Register experiment trackers: where ``harness run --tracker NAME`` also logs a run.

    A factory takes a :class:`harness.tracking.TrackerSettings` (the run folder, the run's
    name, its ``group``: the bench spec's name where a bench started it, ``uri`` from
    ``--tracker-uri``, and ``resume``) and returns an object with
    ``log_params(params)`` (the resolved config, flattened to ``key: str``),
    ``log_metrics(metrics, step)`` (named floats: loss terms and diagnostics as
    ``<stage>/<term>`` at each log step, final metrics at step 0),
    ``log_artifact(path)`` (cmc.png, sr_samples.png, ranks.png, ranks.json) and
    ``close(status)`` (``complete``, ``failed`` or ``interrupted``). Import the library
    inside the factory and name it in ``requires=``, so the harness starts without it
    and a run asking for it fails before training with ``install_hint``. Nothing a
    tracker does changes a result; a tracker failing mid-run is dropped with a warning.

    :param registry: add factories with
        ``registry.add(name, factory, summary, requires=..., install_hint=...)``.

    Example::

        @hookimpl
        def harness_register_trackers(registry):
            registry.add("print", lambda settings: PrintTracker(), "prints every metric")

        class PrintTracker:
            def log_params(self, params): print(params)
            def log_metrics(self, metrics, step): print(step, metrics)
            def log_artifact(self, path): print("artefact", path)
            def close(self, status): print("run", status)
    """


# --------------------------------------------------------------------------
# Observation: called after the fact; must not change results.
# --------------------------------------------------------------------------


@hookspec
def harness_run_finished(run_dir: str, metrics: dict[str, Any]) -> None:
    """React to a finished run (loggers, uploaders, notifiers).

    :param run_dir: the run folder, complete and written atomically.
    :param metrics: the content of ``metrics.json``.

    Example::

        @hookimpl
        def harness_run_finished(run_dir, metrics):
            print(run_dir, metrics["sr"]["rank1"])
    """
