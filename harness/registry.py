"""The plugin manager and the name -> factory tables built from its hooks.

Every plugin, built-in or third-party, arrives through the entry-point group
``harness.plugins``. A plugin that fails to import is recorded with its error
(``harness list`` shows it) and does not take the others down.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from harness import hookspecs, registrars
from harness.components import Entry
from harness.errors import PluginError, UnknownNameError
from harness.kinds import KINDS, get_kind, kind_names
from harness.registrars import KindRegistry, ResolverEntry

ENTRY_POINT_GROUP = "harness.plugins"
BUILTIN_DISTRIBUTION = "crossres-harness"
AUTOLOAD_ENV = "HARNESS_DISABLE_PLUGIN_AUTOLOAD"


class Registry:
    """All registered components, with their provenance and load failures."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.entries: dict[str, dict[str, Entry]] = {kind: {} for kind in kind_names()}
        self._resolvers: dict[str, list[ResolverEntry]] = {}
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
        for kind in KINDS:
            if not any(
                impl.plugin is plugin for impl in getattr(self.pm.hook, kind.hook).get_hookimpls()
            ):
                continue
            # Through pluggy, restricted to this plugin: an implementation may take a
            # subset of the hook's arguments, and each registration knows its plugin.
            caller = self.pm.subset_hook_caller(kind.hook, remove_plugins=others)
            registrar: type[KindRegistry] = getattr(registrars, kind.registrar)
            try:
                caller(registry=registrar(kind.name, name, self))
            except PluginError:
                raise
            except Exception as exc:
                self.failed[name] = f"{kind.hook} raised {type(exc).__name__}: {exc}"

    # -- what registrars add (harness.registrars.Sink) ---------------------
    def record(self, entry: Entry) -> None:
        """Add one registered entry; a name two plugins register is an error naming both."""
        table = self.entries[entry.kind]
        if entry.name in table:
            other = table[entry.name]
            raise PluginError(
                f"{entry.kind} name {entry.name!r} is registered twice: by plugin "
                f"{other.plugin!r} and by plugin {entry.plugin!r}; names must be unique"
            )
        table[entry.name] = entry

    def record_resolver(self, kind: str, resolver: ResolverEntry) -> None:
        self._resolvers.setdefault(kind, []).append(resolver)

    # -- lookup ------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[get_kind(kind).name])

    def resolvers(self, kind: str) -> list[ResolverEntry]:
        return list(self._resolvers.get(kind, []))

    def lookup(self, kind: str, name: str) -> Entry:
        """The entry for ``name``; unknown names list what exists, with a suggestion."""
        table = self.entries[get_kind(kind).name]
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
            f"unknown {kind} {name!r}.{hint} "
            f"Known {kind} names: {', '.join(known) or '(none)'}{extra}."
        )

    def hook(self) -> Any:
        return self.pm.hook


def suggest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Close names, case aside (``SRGAN`` -> ``srgan``,
    ``efficientnet_b00`` -> ``efficientnet_b0``)."""
    by_lower: dict[str, str] = {}
    for k in known:
        by_lower.setdefault(k.lower(), k)
    return [
        by_lower[c]
        for c in difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.6)
    ]


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
