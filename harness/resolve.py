"""A run's settings resolved: preset < explicit values, every declared plugin option filled in.

Apart from :mod:`harness.config` (the settings themselves) because resolving
reads the presets, the plugins' declared options and, for a preference list of
backbones, which initial weights this machine holds; the settings module
depends on none of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.config import (
    _PROTOCOL_FIELDS,
    _RUN_FIELDS,
    COMPONENT_FIELDS,
    ProtocolConfig,
    RunConfig,
    coerce_setting,
    parse_hr_size,
)
from harness.errors import ConfigError, PluginError
from harness.options import coerce_option
from harness.presets import default_preset, preset_values
from harness.pretrained import choose_backbone
from harness.registrars import fixed_sr_model


def selected_entries(config: RunConfig, registry: Any) -> list:
    """The registry entries a run uses: its SR, re-id, regulariser, dataset and D."""
    return [registry.lookup(kind, getattr(config, field)) for kind, field in COMPONENT_FIELDS]


def declared_options(config: RunConfig, registry: Any) -> dict[str, tuple[Any, Any]]:
    """``key -> (Option, Entry)`` over the selected components; a key two declare is an error.

    Options share one flat namespace in ``config.options`` (and in ``config.json``), so
    two selected components may not both declare a key: the error names both plugins,
    as a clash of component names does.
    """
    declared: dict[str, tuple[Any, Any]] = {}
    for entry in selected_entries(config, registry):
        for key, option in entry.options.items():
            if key in declared and declared[key][1].name != entry.name:
                other = declared[key][1]
                raise PluginError(
                    f"option {key!r} is declared by {other.kind} {other.name!r} (plugin "
                    f"{other.plugin!r}) and by {entry.kind} {entry.name!r} "
                    f"(plugin {entry.plugin!r}); "
                    "options of the components a run uses must be unique: rename one"
                )
            declared.setdefault(key, (option, entry))
    return declared


def _unqualify(key: str, declared: Mapping[str, tuple[Any, Any]]) -> str:
    """``intact.lambda_a`` -> ``lambda_a`` when component ``intact`` declares it."""
    name, dot, bare = key.rpartition(".")
    if dot and bare in declared and declared[bare][1].name == name:
        return bare
    return key


def _named(key: str, value: Any) -> Any:
    """``coerce_setting`` whose error names the setting."""
    try:
        return coerce_setting(key, value)
    except ConfigError as exc:
        raise ConfigError(f"{key}={value!r}: {exc}") from None


def _method_sr_model(config: RunConfig, registry: Any, sr_given: bool) -> RunConfig:
    """The SR component a method fixes (``RegulariserEntry.sr_model``): the default for its
    runs, and an error when a run names another (a RAIN row with an SRGAN in front would
    not be RAIN)."""
    required = fixed_sr_model(registry.lookup("regulariser", config.reg))
    if required is None or config.sr == required:
        return config
    if sr_given:
        what = (
            "no SR model (queries go to the re-id model bicubic-upsampled)"
            if required == "bicubic"
            else f"--sr {required}"
        )
        raise ConfigError(
            f"--reg {config.reg} is defined with {what}; got --sr {config.sr} "
            f"(leave --sr out, or use --sr {required})"
        )
    return config.replace(sr=required)


def resolve_config(values: Mapping[str, Any], registry: Any) -> RunConfig:
    """Preset < explicit values; every declared option of the selected plugins filled in.

    ``values`` holds only what the user gave (None means "not given", timm's
    habit), with ``options`` and ``protocol`` as nested dicts. An option may be
    named bare (``lambda_a``) or by its component (``intact.lambda_a``); its
    preset value comes from its own declaration (:class:`harness.Option`).
    """
    values = {k: v for k, v in values.items() if v is not None}
    preset = values.get("preset") or default_preset()
    base = preset_values(preset)
    user_options = dict(values.pop("options", {}) or {})
    user_protocol = {
        k: v for k, v in dict(values.pop("protocol", {}) or {}).items() if v is not None
    }
    unknown = sorted(set(values) - _RUN_FIELDS - {"hr_size"})
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(unknown)}")
    bad_proto = sorted(set(user_protocol) - _PROTOCOL_FIELDS)
    if bad_proto:
        raise ConfigError(f"unknown protocol settings: {', '.join(bad_proto)}")
    protocol = {**base.pop("protocol", {}), **user_protocol}
    hr_size = values.pop("hr_size", None)
    fields = {**base, **{k: _named(k, v) for k, v in values.items()}, "preset": preset}
    if hr_size is not None:  # "native" clears a preset's HR size
        fields["hr_height"], fields["hr_width"] = parse_hr_size(hr_size)
    config = RunConfig(**fields, protocol=ProtocolConfig(**protocol))
    if "|" in config.reid:  # a preference list: the first backbone whose initial weights are here
        chosen, _ = choose_backbone(config.reid.split("|"), config.reid_init, registry)
        config = config.replace(reid=chosen, reid_requested=config.reid)
    config = _method_sr_model(config, registry, sr_given="sr" in values)

    declared = declared_options(config, registry)
    user_options = {_unqualify(k, declared): v for k, v in user_options.items()}
    stray = sorted(set(user_options) - set(declared))
    if stray:
        raise ConfigError(
            f"unknown option(s) {', '.join(stray)} for sr={config.sr}, reid={config.reid}, "
            f"reg={config.reg}, data={config.data}, disc={config.disc}; "
            f"their options: {', '.join(sorted(declared)) or '(none)'}"
        )
    options = {key: option.value_for(preset) for key, (option, _) in declared.items()}
    for key, value in user_options.items():
        try:
            options[key] = coerce_option(value, declared[key][0].default)
        except ConfigError as exc:
            raise ConfigError(f"-o {key}={value}: {exc}") from None
    for key, value in options.items():
        declared[key][0].check(key, value)
    return config.replace(options=options)
