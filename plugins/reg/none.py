"""``none``: the SR generator trained with pixel MSE plus the re-id ID loss, nothing else."""

from __future__ import annotations

from harness import hookimpl
from plugins.reg.base import SRRegulariser


@hookimpl
def harness_register_regularisers(registry) -> None:
    registry.add(
        "none",
        SRRegulariser,
        "pixel MSE + lambda_c * ID loss on SR images; no discriminator",
        options=SRRegulariser.options,
    )
