"""The plugin manager and the name -> factory tables built from its hooks.

Every plugin, built-in or third-party, arrives through the entry-point group
``harness.plugins``. A plugin that fails to import is recorded with its error
(``harness list`` shows it) and does not take the others down.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from harness import hookspecs
from harness.components import Entry, Option
from harness.errors import PluginError, UnknownNameError

ENTRY_POINT_GROUP = "harness.plugins"
BUILTIN_DISTRIBUTION = "crossres-harness"
AUTOLOAD_ENV = "HARNESS_DISABLE_PLUGIN_AUTOLOAD"

#: kind -> the hook that fills it
KINDS: dict[str, str] = {
    "sr": "harness_register_sr",
    "discriminator": "harness_register_discriminators",
    "reid": "harness_register_reid",
    "regulariser": "harness_register_regularisers",
    "dataset": "harness_register_datasets",
    "weights": "harness_register_weights",
    "launcher": "harness_register_launchers",
}

Resolver = Callable[[str], "Callable[..., Any] | None"]


@dataclass
class _Resolver:
    resolve: Resolver
    summary: str
    plugin: str
    options: Mapping[str, Option] = field(default_factory=dict)
    names: Callable[[], Iterable[str]] | None = None


class KindRegistry:
    """What a registration hook receives: adds factories of one kind."""

    def __init__(self, kind: str, plugin: str, owner: Registry):
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
        self._owner._add(Entry(self.kind, name, factory, summary, self.plugin, dict(options or {})))

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
        self._owner._resolvers.setdefault(self.kind, []).append(
            _Resolver(resolver, summary, self.plugin, dict(options or {}), names)
        )


class Registry:
    """All registered components, with their provenance and load failures."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self._resolvers: dict[str, list[_Resolver]] = {}
        self.failed: dict[str, str] = {}
        self.plugins: dict[str, str] = {}  # plugin name -> distribution

    # -- loading -----------------------------------------------------------
    def load_entry_points(self, autoload: bool | None = None, blocked: Iterable[str] = ()) -> None:
        """Import every plugin of the group; third-party ones only if autoload is on."""
        if autoload is None:
            autoload = not os.environ.get(AUTOLOAD_ENV)
        blocked = set(blocked) | _env_list("HARNESS_BLOCK_PLUGINS")
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist is not None else "?"
            if dist != BUILTIN_DISTRIBUTION and not autoload:
                continue
            if ep.name in blocked or ep.name in self.plugins:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not break the others
                self.failed[ep.name] = f"{type(exc).__name__}: {exc}"
                continue
            self.register_plugin(module, ep.name, dist)
        if not any(d == BUILTIN_DISTRIBUTION for d in self.plugins.values()) and not self.failed:
            raise PluginError(
                "no built-in plugins found in the entry-point group 'harness.plugins'; "
                "install the package (pip install -e .) so its entry points exist"
            )

    def register_plugin(self, plugin: ModuleType | object, name: str, dist: str = "local") -> None:
        """Register one plugin object and collect what its hooks add."""
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except Exception as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self.failed[name] = f"{type(exc).__name__}: {exc}"
            return
        self.plugins[name] = dist
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        for kind, hook_name in KINDS.items():
            if not any(impl.plugin is plugin for impl in getattr(self.pm.hook, hook_name).get_hookimpls()):
                continue
            # Through pluggy, restricted to this plugin: an implementation may take a
            # subset of the hook's arguments, and each registration knows its plugin.
            caller = self.pm.subset_hook_caller(hook_name, remove_plugins=others)
            try:
                caller(registry=KindRegistry(kind, name, self))
            except PluginError:
                raise
            except Exception as exc:
                self.failed[name] = f"{hook_name} raised {type(exc).__name__}: {exc}"

    def _add(self, entry: Entry) -> None:
        table = self.entries[entry.kind]
        if entry.name in table:
            other = table[entry.name]
            raise PluginError(
                f"{entry.kind} name {entry.name!r} is registered twice: by plugin "
                f"{other.plugin!r} and by plugin {entry.plugin!r}; names must be unique"
            )
        table[entry.name] = entry

    # -- lookup ------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[_check_kind(kind)])

    def resolvers(self, kind: str) -> list[_Resolver]:
        return list(self._resolvers.get(kind, []))

    def lookup(self, kind: str, name: str) -> Entry:
        """The entry for ``name``; unknown names list what exists, with a suggestion."""
        table = self.entries[_check_kind(kind)]
        if name in table:
            return table[name]
        for res in self._resolvers.get(kind, []):
            factory = res.resolve(name)
            if factory is not None:
                return Entry(kind, name, factory, res.summary, res.plugin, res.options)
        known = sorted(table)
        close = suggest(name, known)
        for res in self._resolvers.get(kind, []):
            if not close and res.names is not None:
                close = suggest(name, list(res.names()))
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        extra = "".join(f"; also: {r.summary}" for r in self._resolvers.get(kind, []))
        raise UnknownNameError(
            f"unknown {kind} {name!r}.{hint} Known {kind} names: {', '.join(known) or '(none)'}{extra}."
        )

    def hook(self) -> Any:
        return self.pm.hook


def suggest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Close names, case aside (``SRGAN`` -> ``srgan``, ``efficientnet_b00`` -> ``efficientnet_b0``)."""
    by_lower: dict[str, str] = {}
    for k in known:
        by_lower.setdefault(k.lower(), k)
    return [by_lower[c] for c in difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.6)]


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise UnknownNameError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")
    return kind


def _env_list(name: str) -> set[str]:
    return {part.strip() for part in os.environ.get(name, "").split(",") if part.strip()}


_DEFAULT: Registry | None = None


def get_registry(refresh: bool = False) -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    global _DEFAULT
    if _DEFAULT is None or refresh:
        registry = Registry()
        registry.load_entry_points()
        _DEFAULT = registry
    return _DEFAULT


def import_object(path: str) -> Any:
    """Import ``module:attr`` lazily (keeps heavy backends out of start-up)."""
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module
