"""``rain`` and ``cad``: resolution-invariant re-id features, no SR model at test time.

The other family of Table 1. Instead of restoring the LR query, the re-id
model (the encoder) is trained so that an LR image, bicubic-upsampled to the
HR size, lands where its HR image does; a query is embedded straight from its
upsampled LR image. Both register ``sr_model="bicubic"``: a run has no SR model
(``--sr`` is bicubic and has no parameters; the "SR" query *is* the
upsampled one, through the re-id model stage 1 trained).

Each iteration, on a batch of HR images and their LR versions (made by the
protocol, upsampled):

1. ``Df``: a feature-level resolution discriminator learns to tell the re-id
   feature ``f_c`` of an HR image from that of an upsampled LR one (the re-id
   model frozen).
2. ``reid``: the re-id model (and the decoder) on the ID loss of both halves,
   plus ``lambda_adv`` * the adversarial loss that makes ``Df`` take LR features
   for HR ones (``Df`` frozen), plus ``lambda_rec`` * a reconstruction loss
   through a decoder from ``f_c``.

The two differ in what the decoder must produce and what else they train:

- **RAIN** (Chen et al., AAAI 2019, arXiv 1907.10843): the decoder reconstructs
  each *input* (HR from HR, the upsampled LR from LR), so the invariant feature
  still describes its image.
- **CAD** (Li et al., ICCV 2019, arXiv 1908.06052): the decoder *recovers the HR
  image* from either feature (HR-recovery), an image discriminator ``D`` judges
  the recovered HR images against real ones (its own step), and the re-id
  model's ID loss also applies to the recovered images.

Departures from the papers (docs/methods.md): the encoder is the run's re-id
backbone, pretrained on HR in stage 0 and fine-tuned here (the papers train
end to end from ImageNet); ``Df`` and the decoder read the pooled feature
``f_c`` rather than intermediate feature maps; at test time CAD embeds the
upsampled query only (the paper concatenates the features of the recovered
image); squared-error reconstruction (the papers use L1).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
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
from harness.losses import gan_d_loss, gan_g_loss, identity_ce, observe
from harness.steps import DISCRIMINATOR_BETAS

from .mlp import mlp

INVARIANT_OPTIONS: dict[str, Option] = {
    "lambda_adv": Option(
        0.1,
        "weight of the feature-level adversarial loss (LR features made to pass for HR ones)",
        min=0.0,
        search=log_range(0.01, 1.0),
    ),
    "lambda_rec": Option(
        10.0,
        "weight of the decoder's reconstruction loss (per-element MSE, about 1e-2 at start)",
        min=0.0,
        search=log_range(1.0, 100.0),
    ),
    "lr_Df": Option(
        1e-4, "learning rate of the feature discriminator", min=0.0, exclusive_min=True
    ),
    "df_hidden": Option(256, "hidden width of the feature discriminator", min=1),
}

CAD_OPTIONS: dict[str, Option] = {
    **INVARIANT_OPTIONS,
    "lambda_g": Option(
        0.01,
        "weight of the image adversarial loss on recovered HR images",
        min=0.0,
        search=log_range(1e-3, 0.1),
    ),
    "lambda_cid": Option(
        0.5, "weight of the ID loss on recovered HR images", min=0.0, search=log_range(0.05, 5.0)
    ),
    "lr_D": Option(1e-4, "learning rate of the image discriminator", min=0.0, exclusive_min=True),
}


class FeatureDecoder(nn.Module):
    """``f_c`` -> an image of the HR size: a linear map to a quarter-size grid, then two
    upsampling convolutions (a pooled vector carries no layout; this gives it one)."""

    def __init__(self, feature_dim: int, size: tuple[int, int], channels: int = 32):
        super().__init__()
        self.grid = (max(1, size[0] // 4), max(1, size[1] // 4))
        self.size = size
        self.channels = channels
        self.project = nn.Linear(feature_dim, channels * self.grid[0] * self.grid[1])
        self.body = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(channels, 3, 3, padding=1),
        )

    def forward(self, f: Tensor) -> Tensor:
        x = self.project(f.float()).view(-1, self.channels, *self.grid)
        x = F.interpolate(self.body(x), size=self.size, mode="bilinear", align_corners=False)
        return torch.sigmoid(x)


def upsampled_lr(ctx: StepContext) -> Tensor:
    """The batch's LR images as the query path sees them: bicubic to the HR size, in [0, 1]."""
    return ctx.sr().clamp(0.0, 1.0)


def feature_disc_loss(ctx: StepContext) -> dict[str, Tensor]:
    """``Df``: real HR features -> 1, upsampled-LR features -> 0 (re-id read frozen)."""
    f_lr = observe(ctx["reid"], upsampled_lr(ctx))[1]
    return {"gan": gan_d_loss(ctx["Df"](ctx.real_reid_features()), ctx["Df"](f_lr))}


def invariance_probes(ctx: StepContext) -> dict[str, float]:
    """On held-out images, from one read of their HR and upsampled-LR features:

    ``f_disc_accuracy``: the share ``Df`` places right (0.5: it cannot tell LR from HR);
    ``feature_gap``: ``||f_c(HR) - f_c(LR up)||^2`` per dim over the variance of
    ``f_c(HR)`` (0 when the re-id model embeds an upsampled LR image where it embeds its
    HR one).
    """
    f_hr = ctx.real_reid_features()
    f_lr = observe(ctx["reid"], upsampled_lr(ctx))[1]
    hits = torch.cat([ctx["Df"](f_hr) > 0, ctx["Df"](f_lr) < 0])
    variance = f_hr.float().var(dim=0, unbiased=False).mean().clamp_min(1e-12)
    gap = (f_hr.float() - f_lr.float()).pow(2).mean() / variance
    return {"f_disc_accuracy": float(hits.float().mean()), "feature_gap": float(gap)}


class RainRegulariser(Regulariser):
    """RAIN: ID + feature-level adversarial + input reconstruction, on the re-id model."""

    name = "rain"
    options: ClassVar[dict[str, Option]] = INVARIANT_OPTIONS

    def build(self, ctx: BuildContext) -> dict[str, nn.Module]:
        return {
            "Df": nn.Sequential(mlp(ctx.reid_dim, 1, self.opts["df_hidden"], 2), nn.Flatten(0)),
            "dec": FeatureDecoder(ctx.reid_dim, ctx.image_size),
        }

    def reconstruction_targets(self, ctx: StepContext, x_up: Tensor) -> Tensor:
        """What the decoder must produce from the features of ``[HR, LR up]``: the inputs."""
        return torch.cat([ctx.batch.x_hr, x_up])

    def encoder_terms(self, ctx: StepContext) -> dict[str, Tensor]:
        """ID on HR and upsampled LR, LR features passing for HR, and reconstruction."""
        return self.encoder_pass(ctx)[0]

    def encoder_pass(self, ctx: StepContext) -> tuple[dict[str, Tensor], Tensor]:
        """The encoder's terms and the decoder's images of ``[HR, LR up]`` (one forward)."""
        x_hr, x_up = ctx.batch.x_hr, upsampled_lr(ctx)
        logits, f = ctx["reid"](torch.cat([x_hr, x_up.to(x_hr.dtype)]))
        n, smooth, o = len(x_hr), ctx.config.label_smooth, self.opts
        recovered = ctx["dec"](f)
        terms = {
            "id_hr": identity_ce(logits[:n], ctx.batch.pids, smooth),
            "id_lr": identity_ce(logits[n:], ctx.batch.pids, smooth),
            "adv": o["lambda_adv"] * gan_g_loss(ctx["Df"](f[n:])),
            "rec": o["lambda_rec"]
            * F.mse_loss(recovered.float(), self.reconstruction_targets(ctx, x_up).float()),
        }
        return terms, recovered

    def schedule(self, config: RunConfig) -> list[Step]:
        return [
            # (1) the feature-level resolution discriminator
            Step("Df", ("Df",), feature_disc_loss, lr={"Df": self.opts["lr_Df"]}),
            # (2) the re-id model (the encoder) and the decoder against it
            Step(
                "reid",
                ("reid", "dec"),
                self.encoder_terms,
                weight_decay={"reid": config.weight_decay},
            ),
        ]

    def probe(self, ctx: StepContext) -> dict[str, float]:
        return invariance_probes(ctx)


class CadRegulariser(RainRegulariser):
    """CAD: RAIN's encoder objective with HR recovery, an image GAN on the recovered images
    and the ID loss on them."""

    name = "cad"
    options: ClassVar[dict[str, Option]] = CAD_OPTIONS

    def build(self, ctx: BuildContext) -> dict[str, nn.Module]:
        return {**super().build(ctx), "D": ctx.make_discriminator()}

    def reconstruction_targets(self, ctx: StepContext, x_up: Tensor) -> Tensor:
        """HR recovery: the HR image from either feature."""
        return torch.cat([ctx.batch.x_hr, ctx.batch.x_hr])

    def encoder_terms(self, ctx: StepContext) -> dict[str, Tensor]:
        terms, recovered = self.encoder_pass(ctx)
        recovered_lr = recovered[len(ctx.batch.x_hr) :]
        o = self.opts
        logit, _ = ctx["D"](recovered_lr)
        terms["gan"] = o["lambda_g"] * gan_g_loss(logit)
        logits, _ = ctx["reid"](recovered_lr)
        terms["id_rec"] = o["lambda_cid"] * identity_ce(
            logits, ctx.batch.pids, ctx.config.label_smooth
        )
        return terms

    def recovered_disc_loss(self, ctx: StepContext) -> dict[str, Tensor]:
        """``D``: real HR -> 1, HR recovered from upsampled LR -> 0 (encoder and decoder frozen)."""
        f_lr = observe(ctx["reid"], upsampled_lr(ctx))[1]
        fake = observe(ctx["dec"], f_lr)
        real_logit, _ = ctx["D"](ctx.batch.x_hr)
        fake_logit, _ = ctx["D"](fake)
        return {"gan": gan_d_loss(real_logit, fake_logit)}

    def schedule(self, config: RunConfig) -> list[Step]:
        feature_step, encoder_step = super().schedule(config)
        image_step = Step(
            "D",
            ("D",),
            self.recovered_disc_loss,
            lr={"D": self.opts["lr_D"]},
            betas=DISCRIMINATOR_BETAS,
        )
        return [feature_step, image_step, encoder_step]


@hookimpl
def harness_register_regularisers(registry) -> None:
    registry.add(
        "rain",
        RainRegulariser,
        "RAIN (Chen et al. 2019): resolution-invariant re-id features (feature GAN + "
        "reconstruction); no SR model",
        options=RainRegulariser.options,
        sr_model="bicubic",
    )
    registry.add(
        "cad",
        CadRegulariser,
        "CAD (Li et al. 2019): resolution-invariant features + HR recovery with an image GAN; "
        "no SR model",
        options=CadRegulariser.options,
        sr_model="bicubic",
    )
