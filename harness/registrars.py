"""What a registration hook receives, and the typed entries it adds.

Every hook gets a :class:`KindRegistry` for its kind (``registry.add(name,
factory, summary, options=...)``); a kind that registers more than a factory
gets a subclass whose ``add`` says so in its signature and whose entries carry
it as a typed field (:class:`DatasetEntry`, :class:`WeightsEntry`), rather than
as attributes attached to a function and fetched back with ``getattr``.
Which class a kind gets is the ``registrar`` column of :data:`harness.kinds.KINDS`.

This module does not import the registry nor the hook specs: the registry hands
each registrar a :class:`Sink` to add to, so the three import in one direction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.components import Entry
from harness.options import Option
from harness.pretrained import WeightSource

#: ``resolver(name)`` -> a factory, or ``None`` where the name is not its own
Resolver = Callable[[str], "Callable[..., Any] | None"]


@dataclass(frozen=True)
class ResolverEntry:
    """A resolver of names not registered one by one (timm's whole zoo), with provenance."""

    resolve: Resolver
    summary: str
    plugin: str
    options: Mapping[str, Option] = field(default_factory=dict)
    names: Callable[[], Iterable[str]] | None = None


class Sink(Protocol):
    """Where a registrar puts what a plugin registers (the :class:`~harness.registry.Registry`)."""

    def record(self, entry: Entry) -> None: ...

    def record_resolver(self, kind: str, resolver: ResolverEntry) -> None: ...


class KindRegistry:
    """What a registration hook receives: adds factories of one kind."""

    def __init__(self, kind: str, plugin: str, owner: Sink):
        self.kind = kind
        self.plugin = plugin
        self._owner = owner

    def add(
        self,
        name: str,
        factory: Callable[..., Any],
        summary: str,
        options: Mapping[str, Option] | None = None,
    ) -> None:
        """Register ``factory`` under ``name``; a name taken by another plugin is an error."""
        self._owner.record(
            Entry(self.kind, name, factory, summary, self.plugin, dict(options or {}))
        )

    def add_resolver(
        self,
        resolver: Resolver,
        summary: str,
        options: Mapping[str, Option] | None = None,
        names: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        """Resolve names not registered explicitly (e.g. any timm model name).

        ``resolver(name)`` returns a factory or ``None``. Explicit names win.
        ``names()``, where given, lists the names it knows, for "did you mean"
        suggestions on a typo (called only then).
        """
        self._owner.record_resolver(
            self.kind, ResolverEntry(resolver, summary, self.plugin, dict(options or {}), names)
        )


# ---------------------------------------------------------------------------- datasets


class LayoutWriter(Protocol):
    """Writes a dataset's images as files in an official layout; returns the data folder."""

    def __call__(self, out_dir: str | Path, layout: str, **sizes: Any) -> Path: ...


@dataclass(frozen=True)
class DatasetEntry(Entry):
    """A registered dataset; ``write_layout`` is set where it can write itself to disk
    (``harness data synth`` uses the synthetic dataset's)."""

    write_layout: LayoutWriter | None = None


class DatasetRegistry(KindRegistry):
    """``harness_register_datasets`` receives this: a factory, plus an optional layout writer."""

    def add(
        self,
        name: str,
        factory: Callable[..., Any],
        summary: str,
        options: Mapping[str, Option] | None = None,
        *,
        write_layout: LayoutWriter | None = None,
    ) -> None:
        """Register ``factory(root, config) -> ReidDataset``; ``write_layout`` writes its
        images in official folder layouts (see :class:`LayoutWriter`)."""
        self._owner.record(
            DatasetEntry(
                self.kind, name, factory, summary, self.plugin, dict(options or {}), write_layout
            )
        )


# ---------------------------------------------------------------------------- weight sources


@dataclass(frozen=True)
class WeightsEntry(Entry):
    """A registered source of pretrained weights.

    A source is registered as it is (there is nothing to build), so the entry's
    ``factory`` slot holds the source object itself; read it as :attr:`source`.
    """

    @property
    def source(self) -> WeightSource:
        return self.factory  # type: ignore[return-value]


class WeightsRegistry(KindRegistry):
    """``harness_register_weights`` receives this: sources, not factories."""

    def add(  # type: ignore[override]  # a source where other kinds take a factory
        self,
        name: str,
        source: WeightSource,
        summary: str,
        options: Mapping[str, Option] | None = None,
    ) -> None:
        """Register ``source`` (a :class:`harness.pretrained.WeightSource`) under ``name``."""
        self._owner.record(
            WeightsEntry(self.kind, name, source, summary, self.plugin, dict(options or {}))  # type: ignore[arg-type]
        )


# ---------------------------------------------------------------------------- regularisers


@dataclass(frozen=True)
class RegulariserEntry(Entry):
    """A registered regulariser (a method of stage 1).

    ``sr_model``: the SR component the method is defined with, where it fixes one
    (``"bicubic"``: the method has no SR model, so a query is embedded by the re-id
    model straight from its bicubic-upsampled LR image, in training and at test
    time alike); ``None``: the run's ``--sr`` decides. A run of the method gets it
    by default, and one naming another ``--sr`` is refused.
    """

    sr_model: str | None = None


class RegulariserRegistry(KindRegistry):
    """``harness_register_regularisers`` receives this: a factory, plus the SR model a method
    fixes, if any."""

    def add(
        self,
        name: str,
        factory: Callable[..., Any],
        summary: str,
        options: Mapping[str, Option] | None = None,
        *,
        sr_model: str | None = None,
    ) -> None:
        """Register ``factory(config) -> Regulariser``; ``sr_model`` names the SR component the
        method is defined with (see :class:`RegulariserEntry`)."""
        self._owner.record(
            RegulariserEntry(
                self.kind, name, factory, summary, self.plugin, dict(options or {}), sr_model
            )
        )


def fixed_sr_model(entry: Entry) -> str | None:
    """The SR component a registered method fixes (``None``: any, or not a regulariser entry)."""
    return entry.sr_model if isinstance(entry, RegulariserEntry) else None


# ---------------------------------------------------------------------------- trackers


@dataclass(frozen=True)
class TrackerEntry(Entry):
    """A registered experiment tracker (``--tracker NAME``).

    ``requires``: the module its factory imports (``"mlflow"``), checked before the run
    trains, so a missing library fails it at once with ``install_hint`` rather than after
    an hour; ``None`` where it needs nothing beyond the harness.
    """

    requires: str | None = None
    install_hint: str | None = None


class TrackerRegistry(KindRegistry):
    """``harness_register_trackers`` receives this: a factory, plus the library it needs."""

    def add(
        self,
        name: str,
        factory: Callable[..., Any],
        summary: str,
        options: Mapping[str, Option] | None = None,
        *,
        requires: str | None = None,
        install_hint: str | None = None,
    ) -> None:
        """Register ``factory(TrackerSettings) -> tracker``; ``requires`` names the module it
        imports and ``install_hint`` how to get it (see :class:`TrackerEntry`)."""
        self._owner.record(
            TrackerEntry(
                self.kind,
                name,
                factory,
                summary,
                self.plugin,
                dict(options or {}),
                requires,
                install_hint,
            )
        )
