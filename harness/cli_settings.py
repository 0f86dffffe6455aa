"""Click options made from the setting declarations, and help grouped by section.

``harness run`` and ``harness pretrain`` take one option per declared setting
(:data:`harness.config.SETTINGS`): its flag, type, help, default and preset values
shown, the range it must respect. Options default to ``None`` ("not given") so a
preset can fill them; the range is checked by the config itself, so a bad value
reads the same from the command line as from a bench spec.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import click

from harness.config import COMPONENT_FIELDS, SETTING, SETTINGS, parse_hr_size
from harness.settings import CachedStage, Section, Setting


class SettingOption(click.Option):
    """A click option that knows the setting it sets (for grouping and for tests)."""

    def __init__(self, *args: Any, setting: Setting, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setting = setting


class SectionedCommand(click.Command):
    """``--help`` lists setting options under their section, the rest under Options."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        groups: dict[str, list[tuple[str, str]]] = {section.value: [] for section in Section}
        groups["other options"] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            setting = getattr(param, "setting", None)
            groups[setting.section.value if setting else "other options"].append(record)
        for title, records in groups.items():
            if records:
                with formatter.section(title[:1].upper() + title[1:]):
                    formatter.write_dl(records)


def param_name(setting: Setting) -> str:
    """The keyword a command receives the setting's option as
    (``--protocol-seed``: protocol_seed)."""
    assert setting.option, setting.name
    return setting.option.lstrip("-").replace("-", "_")


def _shown(setting: Setting, value: Any) -> str:
    if setting.pair:
        return "x".join(str(v) for v in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(_shown(setting, v) for v in value)
    return str(value)


def _values(setting: Setting, preset: str | None) -> Any:
    """The setting's value under a preset, with its pair's for a two-field option."""
    if setting.pair:
        first, second = setting.value_for(preset), SETTING[setting.pair].value_for(preset)
        return None if first is None else (first, second)
    return setting.value_for(preset)


def help_text(setting: Setting) -> str:
    """The declared help, then the default, each preset's own value and the allowed range."""
    default = _values(setting, None)
    facts = [f"default: {setting.shown_default or _shown(setting, default)}"]
    if setting.shown_default is None and default is None:
        facts = []
    presets = [(p, _values(setting, p)) for p in setting.presets]
    presets = [f"{p} {_shown(setting, v)}" for p, v in presets if v is not None]
    facts += presets
    if setting.range_text() and not setting.pair:
        facts.append(("each " if setting.many else "") + setting.range_text())
    return setting.help + (f"  [{'; '.join(facts)}]" if facts else "")


def _parse_many(setting: Setting) -> Callable[..., Any]:
    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            return tuple(setting.kind(v) for v in value.split(",") if v.strip())
        except ValueError as exc:
            noun = "integers" if setting.kind is int else "numbers"
            raise click.BadParameter(f"expected comma-separated {noun}, got {value!r}") from exc

    return parse


def _parse_names(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> Any:
    """``--tracker a --tracker b,c`` -> ("a", "b", "c"); not given: None (the preset decides)."""
    names = tuple(n.strip() for v in value for n in v.split(",") if n.strip())
    return names or None


def _parse_size(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse_hr_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    return value


def _option(setting: Setting) -> Callable[..., Any]:
    """One setting's click option; ``None`` default: not given, the preset decides."""
    name = param_name(setting)
    attrs: dict[str, Any] = {
        "help": help_text(setting),
        "default": None,
        "cls": SettingOption,
        "setting": setting,
    }
    decls = [setting.option, name]
    if setting.kind is bool and not setting.many:
        decls = [f"{setting.option}/--no-{setting.option[2:]}", name]
    elif setting.pair:
        attrs.update(callback=_parse_size, metavar=setting.metavar)
    elif setting.many and setting.kind is str:  # names: repeatable, or comma-separated
        attrs.update(callback=_parse_names, metavar=setting.metavar, multiple=True)
    elif setting.many:
        attrs.update(callback=_parse_many(setting), metavar=setting.metavar)
    else:
        attrs["type"] = {int: click.INT, float: click.FLOAT}.get(setting.kind, click.STRING)
        if setting.choices:
            attrs["metavar"] = "[" + "|".join(map(str, setting.choices)) + "]"
        elif setting.metavar:
            attrs["metavar"] = setting.metavar
    return click.option(*decls, **attrs)


def _ordered(settings: Iterable[Setting]) -> list[Setting]:
    order = list(Section)
    chosen = [s for s in settings if s.option]
    return sorted(chosen, key=lambda s: order.index(s.section))  # stable: declaration order within


def setting_options(settings: Iterable[Setting] = SETTINGS) -> Callable[..., Any]:
    """A decorator adding one option per setting (those with a flag), grouped by section."""
    options = [_option(s) for s in _ordered(settings)]
    names = [param_name(s) for s in _ordered(settings)]
    assert len(set(names)) == len(names), names

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def stage_visible(stage: CachedStage) -> list[Setting]:
    """The settings a command training only ``stage`` takes: its components and sections."""
    fields = {f for kind, f in COMPONENT_FIELDS if kind in stage.components}
    return [
        s
        for s in SETTINGS
        if (s.section is Section.COMPONENTS and s.name in fields)
        or (s.section is not Section.COMPONENTS and s.section in stage.sections)
        or s.name in stage.reads
    ]


def values_from(kw: dict[str, Any]) -> dict[str, Any]:
    """Pop every setting option out of a command's keywords, as ``resolve_config`` takes them.

    Protocol settings go in a nested ``protocol`` table; a paired option under its own name
    (``hr_size``), which ``resolve_config`` splits. Keywords that are no setting stay in ``kw``.
    """
    values: dict[str, Any] = {}
    protocol: dict[str, Any] = {}
    for setting in SETTINGS:
        if not setting.option or param_name(setting) not in kw:
            continue
        value = kw.pop(param_name(setting))
        if setting.pair:
            values[param_name(setting)] = value
        elif setting.name.startswith("protocol."):
            protocol[setting.field] = value
        else:
            values[setting.field] = value
    return {**values, "protocol": protocol}
