"""``csr-gan``: Cascaded SR-GAN with re-id trained jointly (Wang et al., IJCAI 2018,
"Cascaded SR-GAN for Scale-Adaptive Low Resolution Person Re-identification").

The generator is the ``csr`` cascade of x2 stages (the method fixes
``sr_model="csr"``). Each iteration:

1. ``D`` and ``D_mid``: the final SR image against real HR (non-saturating
   GAN), and the cascade's intermediate image against real HR downsampled to
   its size (only for batches whose ratio needs two stages).
2. ``G`` with the re-id model, jointly: pixel MSE at both scales, the GAN terms
   of both discriminators, and the identity loss of the re-id model on the SR
   image and on HR, through the re-id parameters (the SR half reaches G at
   ``lambda_c``, as in ``sing``: :func:`harness.losses.scale_gradient`).

Departures (docs/methods.md): the paper's identity term is a re-id network
trained jointly on the SR output, as here; its perceptual (VGG) term is left
out (no ImageNet VGG without a download); stages are SRResNets residual on
bicubic; the weights are on this harness's per-element scale.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from harness import (
    BuildContext,
    Option,
    Regulariser,
    RunConfig,
    Step,
    StepContext,
    hookimpl,
    log_range,
)
from harness.losses import gan_d_loss, gan_g_loss, pixel_mse
from harness.steps import (
    DISCRIMINATOR_BETAS,
    GAN_OPTIONS,
    Term,
    adversarial,
    discriminator_accuracy,
    discriminator_loss,
    generator_step,
    pixel,
)

from ..sr.bicubic import bicubic_resize
from .sing import joint_identity_terms

CSR_OPTIONS: dict[str, Option] = {
    **{k: v for k, v in GAN_OPTIONS.items() if k != "critic_iters"},
    "lambda_mid": Option(
        1.0, "weight of the intermediate stage's pixel loss", min=0.0, search=log_range(0.1, 10.0)
    ),
}


def intermediate(ctx: StepContext) -> tuple[Tensor, Tensor] | None:
    """The cascade's intermediate SR image of this batch and its HR target at that size."""
    ctx.sr()
    mid = getattr(ctx["G"], "last_intermediate", None)
    if mid is None:
        return None
    size = (int(mid.shape[-2]), int(mid.shape[-1]))
    return mid, bicubic_resize(ctx.batch.x_hr, size).clamp(0.0, 1.0)


def mid_pixel(ctx: StepContext) -> Tensor:
    pair = intermediate(ctx)
    return pixel_mse(*pair) if pair is not None else ctx.sr().sum() * 0.0


def mid_adversarial(ctx: StepContext) -> Tensor:
    pair = intermediate(ctx)
    return gan_g_loss(ctx["D_mid"](pair[0])[0]) if pair is not None else ctx.sr().sum() * 0.0


def discriminators_loss(ctx: StepContext) -> dict[str, Tensor]:
    """Both discriminators in one step: D on the final SR image, ``D_mid`` on the intermediate
    one where this batch's ratio needed two stages."""
    terms = discriminator_loss(ctx)
    pair = intermediate(ctx)
    if pair is not None:
        mid, real = pair
        terms["gan_mid"] = gan_d_loss(ctx["D_mid"](real)[0], ctx["D_mid"](mid.detach())[0])
    return terms


class CsrGanRegulariser(Regulariser):
    """Two discriminators (final and intermediate scale), then the cascade with the re-id
    model on pixel, adversarial and identity terms."""

    name = "csr-gan"
    options: ClassVar[dict[str, Option]] = CSR_OPTIONS

    def build(self, ctx: BuildContext) -> dict[str, nn.Module]:
        return {"D": ctx.make_discriminator(), "D_mid": ctx.make_discriminator()}

    def schedule(self, config: RunConfig) -> list[Step]:
        o = self.opts
        return [
            Step(
                "D",
                ("D", "D_mid"),
                discriminators_loss,
                lr={"D": o["lr_D"], "D_mid": o["lr_D"]},
                betas=DISCRIMINATOR_BETAS,
            ),
            generator_step(
                config,
                pixel(),
                Term("mse_mid", o["lambda_mid"], mid_pixel),
                adversarial(o["lambda_g"]),
                Term("gan_mid", o["lambda_g"], mid_adversarial),
                joint_identity_terms(o["lambda_c"]),
                trainable=("G", "reid"),
            ),
        ]

    def probe(self, ctx: StepContext) -> dict[str, float]:
        return {"d_accuracy": float(discriminator_accuracy(ctx))}


@hookimpl
def harness_register_regularisers(registry) -> None:
    registry.add(
        "csr-gan",
        CsrGanRegulariser,
        "CSR-GAN (Wang et al. 2018): cascaded x2 SR-GANs, pixel + GAN at each scale, re-id "
        "trained jointly",
        options=CsrGanRegulariser.options,
        sr_model="csr",
    )
