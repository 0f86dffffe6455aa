"""Plugin options: declared once beside the plugin that reads them, typed by one rule.

``Option`` carries an option's default, help, range and per-preset values;
:func:`coerce_option` is the one rule that turns a string (CLI ``-o``, bench
``--set``, a spec) into the declared type; :func:`read_options` reads a
plugin's options from a run's config. Kept free of the run config and the
component types so both can import it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError
from harness.settings import MAX_WHOLE, too_big

if TYPE_CHECKING:  # read_options reads a RunConfig; only its name is needed here
    from harness.config import RunConfig


@dataclass(frozen=True)
class Search:
    """Where ``harness tune`` may look for an option's value, declared beside the option.

    Why beside the option: the plugin that reads a weight knows its scale (a loss weight
    spans decades, so it is searched on a log scale), and every spec that tunes the option
    then starts from the same space; a spec may only narrow it (:meth:`narrowed`), so two
    rows tuned by one spec search comparable spaces.
    """

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.choices is None:
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"a search range needs low < high, got {self.low}, {self.high}")
            if self.log and self.low <= 0:
                raise ValueError(f"a log-scale search needs low > 0, got {self.low}")
        elif not self.choices:
            raise ValueError("a search over choices needs at least one")

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(repr, self.choices))
        scale = "log " if self.log else ""
        kind = "int " if self.integer else ""
        return f"{scale}{kind}[{self.low:g}, {self.high:g}]"

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a point of this space (a tune's first trial must be one)."""
        if self.choices is not None:
            return value in self.choices
        if not _is_number(value) or (self.integer and int(value) != value):
            return False
        return self.low <= value <= self.high  # type: ignore[operator]

    def narrowed(self, bounds: Any, key: str) -> Search:
        """This space cut to ``bounds`` (``[low, high]``, or a list of choices), which must lie
        inside it: a spec may narrow a declared space, never widen it."""
        if self.choices is not None:
            picked = tuple(bounds) if isinstance(bounds, list | tuple) else ()
            if not picked or any(c not in self.choices for c in picked):
                raise ConfigError(f"tune space {key}: choose among {self.describe()}")
            return Search(choices=picked)
        if (
            not isinstance(bounds, list | tuple)
            or len(bounds) != 2
            or not all(_is_number(b) for b in bounds)
        ):
            raise ConfigError(f"tune space {key}: give [low, high], got {bounds!r}")
        low, high = float(bounds[0]), float(bounds[1])
        if not (self.low <= low < high <= self.high):  # type: ignore[operator]
            raise ConfigError(
                f"tune space {key}: [{low:g}, {high:g}] must lie inside the declared "
                f"{self.describe()} (a spec narrows a space, never widens it)"
            )
        return Search(low=low, high=high, log=self.log, integer=self.integer)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def log_range(low: float, high: float) -> Search:
    """A weight or learning rate: searched uniformly in its logarithm."""
    return Search(low=low, high=high, log=True)


@dataclass(frozen=True)
class Option:
    """A declared plugin option: its default, one line of help, and per-preset values.

    Declared once, beside the plugin that reads it, so the core's presets name
    only core fields: ``Option(8, "residual blocks", presets={"smoke": 2, "cpu": 6})``.
    """

    default: Any
    help: str
    presets: Mapping[str, Any] = field(default_factory=dict)
    #: inclusive bounds of a numeric option (``None``: unbounded); NaN and inf are never accepted
    min: float | None = None
    max: float | None = None
    #: the value must be strictly above ``min`` (a learning rate, a temperature)
    exclusive_min: bool = False
    #: the values a string option may take
    choices: tuple[Any, ...] | None = None
    #: where ``harness tune`` searches it (None: never tuned)
    search: Search | None = None

    def value_for(self, preset: str | None) -> Any:
        """The value under ``preset`` (the default where the preset names none)."""
        return self.presets.get(preset, self.default) if preset else self.default

    def allowed(self) -> str:
        """What the option accepts, for error messages and ``harness list --verbose``."""
        if self.choices is not None:
            return "one of " + ", ".join(map(repr, self.choices))
        low = (
            ""
            if self.min is None
            else (f"> {self.min:g}" if self.exclusive_min else f">= {self.min:g}")
        )
        high = "" if self.max is None else f"<= {self.max:g}"
        return " and ".join(p for p in (low, high) if p) or "any finite value"

    def check(self, key: str, value: Any) -> None:
        """Raise a ConfigError naming ``key`` when ``value`` is outside what the option allows."""
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"-o {key}={value!r}: must be {self.allowed()}")
        numeric = isinstance(self.default, int | float) and not isinstance(self.default, bool)
        if numeric and isinstance(value, bool):  # lambda_g = true is not a weight
            raise ConfigError(f"-o {key}={value!r}: must be a number ({self.help})")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if isinstance(self.default, int) and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"-o {key}={value!r}: must be a whole number ({self.help})")
        bad = not math.isfinite(value)
        bad = bad or (
            self.min is not None and (value <= self.min if self.exclusive_min else value < self.min)
        )
        bad = bad or (self.max is not None and value > self.max)
        if bad:
            raise ConfigError(f"-o {key}={value!r}: must be {self.allowed()} ({self.help})")
        if isinstance(self.default, int) and abs(value) > MAX_WHOLE:  # sr_channels = 1e30
            raise ConfigError(f"-o {key}={value!r}: {too_big(value)} ({self.help})")


def coerce_option(value: Any, default: Any) -> Any:
    """The one rule turning a string (CLI ``-o``, bench ``--set``, TOML) into an option's type.

    The declared default's type decides: booleans accept 1/0, true/false,
    yes/no, on/off; numbers are parsed; strings, ``None`` defaults and
    non-string values pass through unchanged.
    """
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    if isinstance(default, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"expected a boolean, got {value!r}")
    try:
        return type(default)(value)
    except ValueError as exc:
        raise ConfigError(f"expected {type(default).__name__}, got {value!r}") from exc


def read_options(config: RunConfig, declared: Mapping[str, Option]) -> dict[str, Any]:
    """A plugin's declared options from ``config``: the declared default where absent, typed.

    ``resolve_config`` has already filled every declared option of a run's
    plugins (preset values included); the defaults serve a ``RunConfig`` built
    by hand (tests, notebooks).
    """
    out: dict[str, Any] = {}
    for key, option in declared.items():
        value = config.option(key, option.default)
        default = option.default
        if (
            isinstance(default, (int, float))
            and not isinstance(default, bool)
            and value is not None
        ):
            value = type(default)(value)
        out[key] = value
    return out
