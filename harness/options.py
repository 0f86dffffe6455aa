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

if TYPE_CHECKING:  # read_options reads a RunConfig; only its name is needed here
    from harness.config import RunConfig


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
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        bad = not math.isfinite(value)
        bad = bad or (
            self.min is not None and (value <= self.min if self.exclusive_min else value < self.min)
        )
        bad = bad or (self.max is not None and value > self.max)
        if bad:
            raise ConfigError(f"-o {key}={value!r}: must be {self.allowed()} ({self.help})")


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
