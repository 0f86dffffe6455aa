"""The one table of component kinds: a row per kind, everything else derives from it.

Why a table: a kind used to live in four tables in three files (the registry's
hooks, the config's fields, the contract checks and their config fields), each
kept in step by hand. Adding a kind is now one row here; the registry, the
contract checks, ``harness list`` and ``RunConfig``'s component fields read it.

This module imports nothing of the harness but its errors, so any module
(``harness.config`` included) may import it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import UnknownNameError


@dataclass(frozen=True)
class Kind:
    """One kind of component.

    name: how it is named in ``registry.lookup(kind, ...)``, ``harness list`` and
        ``harness check-plugin --kind``.
    hook: the registration hook that fills it (:mod:`harness.hookspecs`).
    registers: what ``registry.add`` takes for it (the factory protocol), one line.
    check: the contract check's function name in :mod:`harness.contracts`
        (a name, so this table imports no torch).
    registrar: the class in :mod:`harness.registrars` its hook receives (typed
        per kind where a kind registers more than a factory).
    config_field: the ``RunConfig`` field naming the component a run selects;
        ``None`` where a run does not select one by name.
    reads_root: the factory reads a ``--data-root`` folder, so its check needs one.
    """

    name: str
    hook: str
    registers: str
    check: str
    registrar: str = "KindRegistry"
    config_field: str | None = None
    reads_root: bool = False


#: Every kind, in the order ``harness list`` shows them and hooks are called.
KINDS: tuple[Kind, ...] = (
    Kind(
        "sr",
        "harness_register_sr",
        "factory(config) -> nn.Module: forward(x_lr, out_size)",
        "check_sr_model",
        config_field="sr",
    ),
    Kind(
        "discriminator",
        "harness_register_discriminators",
        "factory(config) -> nn.Module: forward(x) -> (logit, f_d)",
        "check_discriminator",
        config_field="disc",
    ),
    Kind(
        "reid",
        "harness_register_reid",
        "factory(config, num_classes) -> nn.Module: (logits, f_c) training, f_c eval",
        "check_reid_model",
        config_field="reid",
    ),
    Kind(
        "regulariser",
        "harness_register_regularisers",
        "factory(config) -> Regulariser",
        "check_regulariser",
        registrar="RegulariserRegistry",
        config_field="reg",
    ),
    Kind(
        "dataset",
        "harness_register_datasets",
        "factory(root, config) -> ReidDataset",
        "check_dataset",
        registrar="DatasetRegistry",
        config_field="data",
        reads_root=True,
    ),
    Kind(
        "weights",
        "harness_register_weights",
        "a WeightSource object (not a factory)",
        "check_weight_source",
        registrar="WeightsRegistry",
    ),
    Kind(
        "launcher",
        "harness_register_launchers",
        "factory(LaunchSettings) -> launcher",
        "check_launcher",
    ),
    Kind(
        "tracker",
        "harness_register_trackers",
        "factory(TrackerSettings) -> tracker",
        "check_tracker",
        registrar="TrackerRegistry",
    ),
)

#: The kinds a run selects, in the order it reads them: their options are declared
#: in this order, and an option two of them declare is reported naming the earlier first.
RUN_ORDER: tuple[str, ...] = ("sr", "reid", "regulariser", "dataset", "discriminator")

_BY_NAME: dict[str, Kind] = {k.name: k for k in KINDS}


def kind_names() -> list[str]:
    """Every kind's name, in table order."""
    return [k.name for k in KINDS]


def get_kind(name: str) -> Kind:
    """The row of ``name``; an unknown kind is an error listing the kinds."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown component kind {name!r}; kinds: {', '.join(kind_names())}"
        ) from None


def component_fields() -> tuple[tuple[str, str], ...]:
    """``(kind, RunConfig field)`` of every component a run selects, in :data:`RUN_ORDER`."""
    return tuple((name, str(_BY_NAME[name].config_field)) for name in RUN_ORDER)


_selected = {k.name for k in KINDS if k.config_field is not None}
if set(RUN_ORDER) != _selected or len(RUN_ORDER) != len(_selected):
    raise AssertionError(f"RUN_ORDER {RUN_ORDER} must list exactly the selected kinds {_selected}")
