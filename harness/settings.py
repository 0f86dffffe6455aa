"""Each run setting declared once: type, default, range, help, section and preset values.

A setting used to be written down in six places (the dataclass, a click option
repeating its default, a range table, the cache-key lists, the leaderboard's
ignore list, the preset tables); a field missing from one list silently shared a
wrong cached model. Now :class:`~harness.config.RunConfig` declares each field
with :func:`setting`, and every other place reads the declaration back through
:func:`declared_settings`: the CLI options, validation, presets, the cache keys
(by section, :class:`CachedStage`) and the leaderboard's notion of a recipe.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from harness.errors import ConfigError

#: Every preset, in the order help texts list them (``harness.presets``).
PRESET_NAMES = ("smoke", "cpu", "paper")

_KEY = "harness.setting"  # dataclass field metadata key of a declaration
_NESTED = "harness.nested"  # a field holding a dataclass of more settings (``protocol``)


class Section(str, Enum):
    """Which part of a run reads a setting; a cached stage's key hashes whole sections."""

    COMPONENTS = "components"
    DATA = "data"
    REID = "reid stage"
    WARM_START = "warm start"
    SR = "SR stage"
    RUNTIME = "runtime"
    PROTOCOL = "protocol"


@dataclass(frozen=True)
class _Declaration:
    """What :func:`setting` records; the field's name and annotation complete it."""

    help: str
    section: Section
    min: float | None = None
    max: float | None = None
    exclusive_min: bool = False
    choices: tuple[Any, ...] | None = None
    probability: bool = False
    presets: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    flag: str | None = ""
    trains: bool = True
    recipe: bool = True
    shown_default: str | None = None
    metavar: str | None = None
    pair: str | None = None


def setting(
    default: Any,
    help: str,
    *,
    section: Section,
    min: float | None = None,
    max: float | None = None,
    exclusive_min: bool = False,
    choices: tuple[Any, ...] | None = None,
    probability: bool = False,
    presets: Mapping[str, Any] | None = None,
    flag: str | None = "",
    trains: bool = True,
    recipe: bool = True,
    shown_default: str | None = None,
    metavar: str | None = None,
    pair: str | None = None,
) -> Any:
    """A dataclass field that is a run setting; everything about it is said here.

    min/max/exclusive_min/choices: the values it may take (``probability``: [0, 1]);
    a tuple setting applies them to every element.
    presets: its value under each preset (:data:`PRESET_NAMES`); the default elsewhere.
    flag: its CLI option (``""``: ``--field-name``; ``None``: none).
    trains: False when it never changes a trained model (where or how fast a run goes,
        how it is evaluated): the cached stages reading its section then ignore it.
    recipe: False when a leaderboard groups runs that differ in it (seeds, folders).
    shown_default: the default as help shows it, where the value alone would mislead.
    pair: a second field that the same CLI option sets (``--hr-size HxW``).
    """
    if probability:
        min, max = 0.0, 1.0
    stray = sorted(set(presets or {}) - set(PRESET_NAMES))
    if stray:
        raise ValueError(f"presets {stray} are not among {PRESET_NAMES}")
    declaration = _Declaration(
        help=help,
        section=Section(section),
        min=min,
        max=max,
        exclusive_min=exclusive_min,
        choices=tuple(choices) if choices is not None else None,
        probability=probability,
        presets=dict(presets or {}),
        flag=flag,
        trains=trains,
        recipe=recipe,
        shown_default=shown_default,
        metavar=metavar,
        pair=pair,
    )
    return dataclasses.field(default=default, metadata={_KEY: declaration})


def nested(factory: Any) -> Any:
    """A field holding a dataclass whose fields are settings too (``RunConfig.protocol``)."""
    return dataclasses.field(default_factory=factory, metadata={_NESTED: factory})


@dataclass(frozen=True)
class Setting(_Declaration):
    """One declared setting, as every consumer reads it: its declaration plus its identity.

    ``name`` is its path in a flattened saved config (``lr``, ``protocol.seed``);
    ``field`` its attribute on the dataclass that holds it; ``kind`` the type of its
    value (of each element where ``many``), read from the field's annotation.
    """

    name: str = ""
    field: str = ""
    default: Any = None
    kind: type = str
    many: bool = False
    optional: bool = False

    @property
    def option(self) -> str | None:
        """Its CLI flag, ``None`` where it has none."""
        return "--" + self.field.replace("_", "-") if self.flag == "" else self.flag

    @property
    def label(self) -> str:
        """How an error names it: the CLI flag, which a spec's field name maps to plainly."""
        return self.option or self.name

    def value_for(self, preset: str | None) -> Any:
        """Its value under ``preset``: the preset's own, else the default."""
        return self.presets.get(preset, self.default) if preset else self.default

    def check(self, value: Any) -> None:
        """Raise :class:`ConfigError` naming the setting where ``value`` is not allowed."""
        if value is None:  # a number no run can do without must be given; other None: as before
            if self.kind in (int, float) and not self.optional:
                raise ConfigError(f"{self.label} must be a number (got None)")
            return
        if self.many and not isinstance(value, (tuple, list)):
            # "13" for cameras would be read as [1, 3]; "2,3" is TOML's string, not its list
            raise ConfigError(
                f"{self.label} must be a list of {self._noun()} like {self._example()} "
                f"(got {value!r})"
            )
        values = tuple(value) if self.many else (value,)
        if self.kind in (int, float):
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
                raise ConfigError(f"{self.label} must be a number (got {value!r})")
            if self.kind is int and any(
                isinstance(v, float) and not v.is_integer() for v in values
            ):
                # 2.5 iterations would run as 3 and be recorded as 2.5: refused, not rounded
                raise ConfigError(f"{self.label} must be a whole number (got {value!r})")
            bad = [v for v in values if not self._in_range(v)]
            if bad:
                raise ConfigError(self._range_error(bad if self.many else value))
            if self.kind is int and any(abs(v) > MAX_WHOLE for v in values):
                raise ConfigError(f"{self.label} {too_big(value)}")
        if self.choices is not None:
            bad = [v for v in values if v not in self.choices]
            if bad:
                got = bad if self.many else value
                raise ConfigError(
                    f"{self.label} must be one of {', '.join(map(str, self.choices))} (got {got!r})"
                )

    def _noun(self) -> str:
        return {int: "whole numbers", float: "numbers"}.get(self.kind, "names")

    def _example(self) -> str:
        if self.kind is str:
            return '["a", "b"]'
        default = self.default if isinstance(self.default, tuple) and self.default else (0, 1)
        return "[" + ", ".join(_num(v) for v in default) + "]"

    def _in_range(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        low, high = self.min, self.max
        if low is not None and not (value > low if self.exclusive_min else value >= low):
            return False
        return high is None or value <= high

    def range_text(self) -> str:
        """``> 0``, ``>= 1 and <= 10``, ``in [0, 1]``; empty where any number goes."""
        if self.probability:
            return "in [0, 1]"
        bounds = []
        if self.min is not None:
            bounds.append(f"> {_num(self.min)}" if self.exclusive_min else f">= {_num(self.min)}")
        bounds += [f"<= {_num(self.max)}"] if self.max is not None else []
        return " and ".join(bounds)

    def _range_error(self, got: Any) -> str:
        if self.probability:
            return f"{self.label} must be in [0, 1]: {self.field} is a probability (got {got!r})"
        finite = "finite and " if self.kind is float else ""
        verb = "must all be" if self.many else "must be"
        return f"{self.label} {verb} {finite}{self.range_text()} (got {got!r})"


#: the largest whole number a count may be: floats stop being exact integers above it (a TOML
#: ``1e30`` is no count), and nothing a run sizes (channels, batches, iterations) comes near it
MAX_WHOLE = 2**53


def too_big(value: Any) -> str:
    """The end of the message for a whole number above :data:`MAX_WHOLE`."""
    return f"must be a whole number no larger than 2^53 (got {value!r})"


def _num(value: float) -> str:
    """``0.0`` -> ``0``, ``0.999`` -> ``0.999``: bounds as a person writes them."""
    return str(int(value)) if float(value).is_integer() else str(value)


def _kind(annotation: str) -> tuple[type, bool, bool]:
    """``"tuple[float, ...] | None"`` -> (float, many, optional), from the field's annotation."""
    text = str(annotation)
    kind = bool if "bool" in text else float if "float" in text else int if "int" in text else str
    return kind, text.startswith("tuple"), "None" in text


@functools.cache
def declared_settings(cls: type, prefix: str = "") -> tuple[Setting, ...]:
    """Every setting a dataclass declares with :func:`setting`, nested ones as ``prefix.name``.

    A field that is neither a setting nor a nested dataclass of settings is skipped
    (``RunConfig.options``: each plugin declares its own options).
    """
    out: list[Setting] = []
    for f in dataclasses.fields(cls):
        if _NESTED in f.metadata:
            out.extend(declared_settings(f.metadata[_NESTED], f"{prefix}{f.name}."))
        elif _KEY in f.metadata:
            kind, many, optional = _kind(f.type)
            declared = f.metadata[_KEY]
            declaration = {
                d.name: getattr(declared, d.name) for d in dataclasses.fields(_Declaration)
            }
            out.append(
                Setting(
                    **declaration,
                    name=f"{prefix}{f.name}",
                    field=f.name,
                    default=f.default,
                    kind=kind,
                    many=many,
                    optional=optional,
                )
            )
    return tuple(out)


def undeclared_fields(cls: type) -> list[str]:
    """Fields of ``cls`` that are neither settings nor nested settings: plugin options only."""
    return [
        f.name
        for f in dataclasses.fields(cls)
        if _KEY not in f.metadata and _NESTED not in f.metadata
    ]


def check_declared(obj: Any) -> None:
    """Every setting a dataclass instance holds itself, against its declaration.

    Nested dataclasses (``protocol``) are left out: they check themselves when made.
    """
    for s in declared_settings(type(obj)):
        if "." not in s.name:
            s.check(getattr(obj, s.field))


@dataclass(frozen=True)
class CachedStage:
    """A stage whose result ``harness bench`` shares between runs, and what its key holds.

    components: the component kinds it builds (their RunConfig field and options).
    sections: every setting of these sections that ``trains``.
    reads: single settings of other sections it reads too.
    after: the cached stages it starts from; their keys enter its key, and with them
        everything they depend on.
    """

    name: str
    components: tuple[str, ...]
    sections: tuple[Section, ...]
    reads: tuple[str, ...] = ()
    after: tuple[str, ...] = ()


#: Stage 0: the re-id model trained on HR images.
STAGE0 = CachedStage(
    "stage0", ("reid", "dataset"), (Section.DATA, Section.REID, Section.RUNTIME, Section.PROTOCOL)
)
#: The pixel-loss warm start of G; G's gradient clip is an SR-stage setting it applies too.
WARMUP = CachedStage(
    "warmup",
    ("sr", "dataset"),
    (Section.DATA, Section.WARM_START, Section.RUNTIME, Section.PROTOCOL),
    reads=("grad_clip",),
)
#: The critic warm-up: the schedule's non-G steps from stage 0's re-id model and the warm G,
#: on training pairs made as the protocol makes LR images.
CRITIC = CachedStage(
    "critic",
    ("regulariser", "discriminator"),
    (Section.RUNTIME,),
    reads=("lr", "grad_clip", "protocol.ratios", "protocol.kernel", "protocol.antialias"),
    after=("stage0", "warmup"),
)
CACHED_STAGES = (STAGE0, WARMUP, CRITIC)
