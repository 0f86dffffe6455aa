"""``camstyle``: camera-style transfer as re-id training augmentation, with label smoothing on
the transferred images (Zhong et al., CVPR 2018, "Camera Style Adaptation for Person
Re-identification"). No SR model at test time: the re-id model embeds the bicubic-upsampled
LR query (``sr_model="bicubic"``), as in the MLR papers' CamStyle row.

The paper trains one CycleGAN per camera pair offline, freezes them, and trains the re-id
model on real images (cross-entropy) plus images transferred into other cameras' styles
(label-smoothing regularisation, LSR: the transferred image's target is ``1 - eps + eps/K``
on its identity and ``eps/K`` elsewhere, so their artefacts are not learned as identity).

Here, as the harness's phases allow:

1. **Critic warm-up** (``style_iters``, cached like any critic warm-up; the re-id model and
   G frozen): the style transfer learns, CycleGAN-style: ``D_style`` on the LSGAN loss,
   ``G_style`` on LSGAN + ``lambda_cyc`` * cycle L1 + ``lambda_idt`` * identity-mapping L1.
   These steps run in the warm-up only (:attr:`harness.Step.phases`): afterwards the
   transfer is frozen, as the paper's offline CycleGANs are.
2. **Stage 1** (``sr_iters``): the re-id model alone, on CE over the real HR images and their
   protocol-made LR versions (upsampled) plus LSR over transferred ones.

Style domains: one per (camera, resolution) that a stage-1 batch holds: each training
camera's HR images and the same images downsampled by the protocol and bicubic-upsampled.
In the MLR setting the LR camera's "style" is mostly its resolution, so transfers across the
HR/LR divide learn blur and de-blur (a learned resolution augmentation), transfers across
cameras learn colour, light and background. One generator conditioned on the target domain
(StarGAN-style, through per-domain normalisation scales and shifts) replaces the paper's
``K(K-1)`` per-pair generators, and one discriminator trunk with a patch head per domain
replaces the per-domain discriminators (docs/methods.md: every departure and why).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import (
    BuildContext,
    ConfigError,
    Option,
    Regulariser,
    RunConfig,
    Step,
    StepContext,
    hookimpl,
)
from harness.losses import identity_ce
from harness.steps import DISCRIMINATOR_BETAS

CAMSTYLE_OPTIONS: dict[str, Option] = {
    "cameras": Option(
        8,
        "camera ids the style transfer knows (0..cameras-1; Market 6, Duke 8, VIPeR/CUHK03 2); "
        "its domains are each camera at HR and at LR",
        min=1,
    ),
    "gen_width": Option(
        16,
        "channels of the style generator's first layer and the discriminator's (CycleGAN: 64; "
        "8 on cpu: 3.5 s per warm-up iteration on one busy core, 16 takes 8.5)",
        presets={"smoke": 4, "cpu": 8},
        min=1,
    ),
    "gen_blocks": Option(2, "residual blocks of the style generator (CycleGAN: 9)", min=0),
    "lambda_cyc": Option(10.0, "weight of the cycle-consistency L1 (CycleGAN's 10)", min=0.0),
    "lambda_idt": Option(
        5.0, "weight of the identity-mapping L1 (CycleGAN's 0.5 * lambda_cyc)", min=0.0
    ),
    "lr_style": Option(
        2e-4, "learning rate of the style generator and discriminator", min=0.0, exclusive_min=True
    ),
    "style_iters": Option(
        300,
        "iterations of the style transfer's training (the critic warm-up) before it is frozen",
        presets={"smoke": 2, "cpu": 200, "paper": 2000},
        min=0,
    ),
    "transfer_share": Option(
        0.25,
        "share of transferred images among the re-id step's images (the paper's 1:3 "
        "transferred:real)",
        min=0.0,
        max=0.9,
    ),
    "lsr_epsilon": Option(
        0.1, "label-smoothing epsilon on transferred images (the paper's 0.1)", min=0.0, max=1.0
    ),
}


# --------------------------------------------------------------------------
# Label-smoothing regularisation
# --------------------------------------------------------------------------


def lsr_targets(pids: Tensor, classes: int, epsilon: float) -> Tensor:
    """The LSR target of each image: ``1 - eps + eps/K`` on its identity, ``eps/K`` elsewhere."""
    q = torch.full((len(pids), classes), epsilon / classes, device=pids.device)
    q[torch.arange(len(pids), device=pids.device), pids] += 1.0 - epsilon
    return q


def lsr_loss(logits: Tensor, pids: Tensor, epsilon: float) -> Tensor:
    """Cross-entropy against :func:`lsr_targets`, averaged over the images."""
    q = lsr_targets(pids, logits.shape[-1], epsilon)
    return -(q * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()


# --------------------------------------------------------------------------
# The style transfer's networks
# --------------------------------------------------------------------------


class DomainNorm(nn.Module):
    """Instance normalisation with a scale and shift per target domain (conditional instance
    norm, as in multi-style transfer): how the generator is told which style to produce.

    Why not StarGAN's one-hot planes at the input: with reflection padding a constant plane
    only adds a constant per channel, and the instance normalisation after the first
    convolution removes exactly that, so the generator could not see its target at all.
    """

    def __init__(self, channels: int, domains: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.scale = nn.Embedding(domains, channels)
        self.shift = nn.Embedding(domains, channels)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: Tensor, domains: Tensor) -> Tensor:
        scale = self.scale(domains)[:, :, None, None].to(x.dtype)
        shift = self.shift(domains)[:, :, None, None].to(x.dtype)
        return self.norm(x) * scale + shift


class _ConvNorm(nn.Module):
    """Convolution (reflection padding), domain-conditioned instance norm, then ReLU if
    ``act``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, domains: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, padding_mode="reflect")
        self.norm = DomainNorm(c_out, domains)

    def forward(self, x: Tensor, domains: Tensor, act: bool = True) -> Tensor:
        y = self.norm(self.conv(x), domains)
        return F.relu(y) if act else y


class StyleGenerator(nn.Module):
    """CycleGAN's ResNet generator, small, conditioned on the target domain through every
    normalisation layer (:class:`DomainNorm`); residual on its input (output
    ``clamp(x + tanh(.), 0, 1)``), so the identity mapping is one zeroed layer away."""

    def __init__(self, domains: int, width: int = 16, blocks: int = 2):
        super().__init__()
        self.domains = domains
        self.inp = _ConvNorm(3, width, 7, domains)
        self.down = _ConvNorm(width, 2 * width, 3, domains, stride=2)
        self.blocks = nn.ModuleList(
            nn.ModuleList([_ConvNorm(2 * width, 2 * width, 3, domains) for _ in range(2)])
            for _ in range(blocks)
        )
        self.up = _ConvNorm(2 * width, width, 3, domains)
        self.out = nn.Conv2d(width, 3, 7, 1, 3, padding_mode="reflect")

    def forward(self, x: Tensor, target: Tensor) -> Tensor:
        h = self.down(self.inp(x, target), target)
        for first, second in self.blocks:
            h = h + second(first(h, target), target, act=False)
        h = self.up(F.interpolate(h, size=x.shape[-2:], mode="nearest"), target)
        return (x + torch.tanh(self.out(h))).clamp(0.0, 1.0)


class DomainDiscriminator(nn.Module):
    """A PatchGAN trunk with one patch map per domain: ``(N, domains, h, w)`` LSGAN scores;
    :meth:`score` picks each image's own domain."""

    def __init__(self, domains: int, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 4, 2, 1),
            nn.InstanceNorm2d(2 * width, affine=True),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * width, domains, 3, 1, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def score(self, x: Tensor, domains: Tensor) -> Tensor:
        """Each image's patch scores under its domain's head: ``(N, h, w)``."""
        return self(x)[torch.arange(len(x), device=x.device), domains]


# --------------------------------------------------------------------------
# The batch as style domains
# --------------------------------------------------------------------------


def real_images(ctx: StepContext, cameras: int) -> tuple[Tensor, Tensor]:
    """``(images, domains)`` of a batch: its HR images (domain = camera) and their LR versions,
    bicubic-upsampled as the query path sees them (domain = camera + ``cameras``)."""
    batch = ctx.batch
    cams = batch.camids
    if cams is None:  # a batch without cameras (the contract kit's stand-ins): one camera
        cams = torch.zeros(len(batch.x_hr), dtype=torch.long, device=batch.x_hr.device)
    if len(cams) and int(cams.max()) >= cameras:
        raise ConfigError(
            f"camstyle: the training data has camera id {int(cams.max())} but the style "
            f"transfer knows {cameras} cameras; set -o cameras={int(cams.max()) + 1} or more"
        )
    x = torch.cat([batch.x_hr, ctx.sr().detach().clamp(0.0, 1.0).to(batch.x_hr.dtype)])
    return x, torch.cat([cams, cams + cameras]).to(x.device)


def target_domains(domains: Tensor) -> Tensor:
    """A target domain for each image, never its own: the other domains present in the batch,
    in turn by position (deterministic, no random state; batches are random draws)."""
    present = torch.unique(domains)
    m = len(present)
    if m < 2:
        return domains.clone()
    position = torch.searchsorted(present, domains)
    offset = 1 + torch.arange(len(domains), device=domains.device) % (m - 1)
    return present[(position + offset) % m]


def transfer_sources(total: int, share: float) -> Tensor:
    """Which of ``total`` real images are transferred for the re-id step: ``n`` spread evenly,
    with ``n / (total + n) = share``."""
    n = round(total * share / (1.0 - share))
    return (torch.arange(n) * total) // max(n, 1)


# --------------------------------------------------------------------------
# The regulariser
# --------------------------------------------------------------------------


class CamStyleRegulariser(Regulariser):
    """The style transfer (trained in the warm-up, then frozen), then the re-id model on real
    images (CE) and transferred ones (LSR)."""

    name = "camstyle"
    options: ClassVar[dict[str, Option]] = CAMSTYLE_OPTIONS
    #: read only by the re-id step: rows differing in these share one style warm-up
    generator_only_options: ClassVar[tuple[str, ...]] = ("transfer_share", "lsr_epsilon")

    @property
    def domains(self) -> int:
        return 2 * self.opts["cameras"]

    def build(self, ctx: BuildContext) -> dict[str, nn.Module]:
        o = self.opts
        return {
            "G_style": StyleGenerator(self.domains, o["gen_width"], o["gen_blocks"]),
            "D_style": DomainDiscriminator(self.domains, o["gen_width"]),
        }

    def critic_warmup_iters(self, config: RunConfig) -> int:
        return int(self.opts["style_iters"])

    def _transfer(self, ctx: StepContext) -> dict[str, Tensor]:
        """The iteration's real images, their domains, targets and transfers (G_style's graph
        kept for the step that trains it); computed once per step."""
        memo = ctx.cache.get("camstyle")
        if memo is None:
            real, domains = real_images(ctx, self.opts["cameras"])
            targets = target_domains(domains)
            fake = ctx["G_style"](real, targets)
            memo = ctx.cache["camstyle"] = {
                "real": real,
                "domains": domains,
                "targets": targets,
                "fake": fake,
            }
        return memo

    def generator_loss(self, ctx: StepContext) -> dict[str, Tensor]:
        """LSGAN (fakes scored 1 under their target's head) + cycle + identity-mapping L1."""
        t, o, g = self._transfer(ctx), self.opts, ctx["G_style"]
        real, fake = t["real"], t["fake"]
        score = ctx["D_style"].score(fake, t["targets"])
        terms = {"gan": (score - 1).pow(2).mean()}
        if o["lambda_cyc"]:
            terms["cyc"] = o["lambda_cyc"] * F.l1_loss(g(fake, t["domains"]), real)
        if o["lambda_idt"]:
            terms["idt"] = o["lambda_idt"] * F.l1_loss(g(real, t["domains"]), real)
        return terms

    def discriminator_loss(self, ctx: StepContext) -> dict[str, Tensor]:
        """LSGAN: real images 1 under their domain's head, transfers 0 under their target's."""
        t, d = self._transfer(ctx), ctx["D_style"]
        real = (d.score(t["real"], t["domains"]) - 1).pow(2).mean()
        fake = d.score(t["fake"].detach(), t["targets"]).pow(2).mean()
        return {"gan": 0.5 * (real + fake)}

    def reid_loss(self, ctx: StepContext) -> dict[str, Tensor]:
        """CE on the real HR and upsampled-LR images, LSR on transfers of a share of them (the
        style transfer frozen, read under ``no_grad``)."""
        o, b = self.opts, ctx.batch
        real, domains = real_images(ctx, o["cameras"])
        pids = torch.cat([b.pids, b.pids])
        idx = transfer_sources(len(real), o["transfer_share"]).to(real.device)
        with torch.no_grad():
            fake = ctx["G_style"](real[idx], target_domains(domains)[idx])
        logits, _ = ctx["reid"](torch.cat([real, fake]))
        n, smooth = len(b.pids), ctx.config.label_smooth
        terms = {
            "id_hr": identity_ce(logits[:n], b.pids, smooth),
            "id_lr": identity_ce(logits[n : 2 * n], b.pids, smooth),
        }
        if len(idx):
            terms["lsr"] = lsr_loss(logits[2 * n :], pids[idx], o["lsr_epsilon"])
        return terms

    def schedule(self, config: RunConfig) -> list[Step]:
        lr = self.opts["lr_style"]
        return [
            # the style transfer, in the warm-up only: afterwards frozen, as the paper's
            # offline CycleGANs (G first, then D on G's fakes, as CycleGAN orders them)
            Step(
                "G_style",
                ("G_style",),
                self.generator_loss,
                lr={"G_style": lr},
                betas=DISCRIMINATOR_BETAS,
                phases=("critic",),
            ),
            Step(
                "D_style",
                ("D_style",),
                self.discriminator_loss,
                lr={"D_style": lr},
                betas=DISCRIMINATOR_BETAS,
                phases=("critic",),
            ),
            # the re-id model on real + transferred images, in stage 1 only
            Step(
                "reid",
                ("reid",),
                self.reid_loss,
                weight_decay={"reid": config.weight_decay},
                phases=("sr",),
            ),
        ]

    def probe(self, ctx: StepContext) -> dict[str, float]:
        """On held-out images: ``style_change``, the mean |transfer - input| (0: the transfer
        does nothing), ``style_cycle``, the cycle L1 (how much of the image survives), and
        ``style_domains``, the (camera, resolution) domains they hold (2: no camera ids)."""
        real, domains = real_images(ctx, self.opts["cameras"])
        fake = ctx["G_style"](real, target_domains(domains))
        back = ctx["G_style"](fake, domains)
        return {
            "style_change": float((fake - real).abs().mean()),
            "style_cycle": float((back - real).abs().mean()),
            "style_domains": float(len(torch.unique(domains))),
        }


@hookimpl
def harness_register_regularisers(registry) -> None:
    registry.add(
        "camstyle",
        CamStyleRegulariser,
        "CamStyle (Zhong et al. 2018): camera-style transfer (CycleGAN, trained first, then "
        "frozen) as augmentation with LSR on transferred images; no SR model",
        options=CamStyleRegulariser.options,
        sr_model="bicubic",
    )
