"""Loss terms and forward helpers shared by the regularisers (plain functions).

Scales. ``L_MSE`` is the per-element mean of the squared error (SRGAN's
pixel loss), not the seed's squared L2 norm summed over the image: the sum
grows with the image size (6,144 elements at 64x32, 98,304 at 256x128), so
every weight beside it would have to change with the preset. With the mean,
the weights are chosen once so the pixel term leads: at a warm-started G the
MSE is about 2e-3, and the defaults (``lambda_c = lambda_g = lambda_a = 3e-4``)
keep the ID, GAN and critic terms below it. Measured on synthetic data at the
``cpu`` preset (benchmarks/RESULTS.md): 1e-4 and 3e-4 keep SR about 1 dB above
bicubic at x2, x3 and x4; 1e-3 (SRGAN's GAN weight) already drops x2 below
bicubic. A run whose SR PSNR falls below bicubic's has let another term lead. To reproduce the seed's summed form at
``H x W``, divide our weights by ``3 H W``.

Every term is computed in float32 (``.float()``), so a bf16 autocast forward
never reduces a loss in low precision. The association terms use plain
``F.mse_loss`` (the mean over batch *and* feature dims of the squared error,
i.e. ``||a - b||^2 / (B * D)``) so that one weight suits every feature size:
a 128-d ``f_d`` on CPU and a 256-d one on a GPU need the same ``lambda_a``.

The forward helpers exist because a frozen module must not be changed by a
step that merely reads it: :func:`observe` forwards without gradient and on
copies of the module's buffers (BatchNorm running statistics stay put), and
:func:`forward_without_param_grad` gives a graph to the *input* but none to
the parameters, which is how ``L_dis`` reaches G through a re-id model that
the same step fine-tunes with the ID loss.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from harness.components import StepContext
from harness.schedule import inference_mode_layers

# --------------------------------------------------------------------------
# Plain losses
# --------------------------------------------------------------------------


def pixel_mse(x_sr: Tensor, x_hr: Tensor) -> Tensor:
    """Pixel-wise MSE between SR output and HR ground truth."""
    return F.mse_loss(x_sr.float(), x_hr.float())


def identity_ce(logits: Tensor, pids: Tensor, label_smooth: float = 0.0) -> Tensor:
    """Identity cross-entropy with label smoothing (the re-id model's own training loss)."""
    return F.cross_entropy(logits.float(), pids, label_smoothing=float(label_smooth))


def gan_d_loss(real_logit: Tensor, fake_logit: Tensor) -> Tensor:
    """Discriminator loss: BCE-with-logits, real -> 1 plus SR -> 0 (a sum, not a mean)."""
    real = real_logit.float().reshape(-1)
    fake = fake_logit.float().reshape(-1)
    return F.binary_cross_entropy_with_logits(
        real, torch.ones_like(real)
    ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))


def gan_g_loss(fake_logit: Tensor) -> Tensor:
    """Non-saturating generator loss: BCE-with-logits of SR against label 1."""
    fake = fake_logit.float().reshape(-1)
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def association_mse(pred: Tensor, target: Tensor) -> Tensor:
    """``F.mse_loss``: squared L2 averaged over batch and feature dims (see module doc)."""
    if pred.shape != target.shape:
        raise ValueError(
            f"association terms compare features of equal shape, got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )
    return F.mse_loss(pred.float(), target.float())


def standardise(x: Tensor, reference: Tensor, eps: float = 1e-10) -> Tensor:
    """``x`` per dim by the mean and std of ``reference`` (statistics carry no gradient).

    How the association critics put their target on one scale: by the real-HR
    batch at hand, read by the same frozen model, in the association step, the
    G step and the probes alike. Why not running statistics: D moves every
    iteration, and a running mean that lags it offsets every standardised
    target (measured: held-out R² below zero while the same critic fitted its
    training batch to 0.6).
    """
    ref = reference.detach().float()
    return (x.float() - ref.mean(0)) / torch.sqrt(ref.var(0, unbiased=False) + eps)


def variance_hinge(z: Tensor, target_std: float = 1.0, eps: float = 1e-4) -> Tensor:
    """Mean over dims of ``relu(target_std - std)``: zero unless a dim collapses (VICReg)."""
    z = z.float()
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(target_std - std).mean()


def covariance_penalty(z: Tensor) -> Tensor:
    """Sum of squared off-diagonal covariances / dim: keeps dims from copying each other (VICReg)."""
    z = z.float()
    n, d = z.shape
    z = z - z.mean(dim=0)
    cov = (z.T @ z) / max(1, n - 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return off.pow(2).sum() / d


# --------------------------------------------------------------------------
# Forward helpers
# --------------------------------------------------------------------------


def _state(module: nn.Module, detach_params: bool) -> dict[str, Tensor]:
    state: dict[str, Tensor] = {
        name: (p.detach() if detach_params else p) for name, p in module.named_parameters()
    }
    # Copies: BatchNorm updates running stats in place, and this forward must not.
    state.update({name: b.clone() for name, b in module.named_buffers()})
    return state


def forward_without_param_grad(module: nn.Module, *args: Any) -> Any:
    """Forward whose graph reaches the inputs but not the parameters, without side effects.

    The output equals the ordinary forward's (same mode, same batch statistics);
    only the parameters are cut from the graph and the buffers are copies.
    """
    return functional_call(module, _state(module, detach_params=True), args)


@torch.no_grad()
def observe(module: nn.Module, *args: Any) -> Any:
    """Forward under ``no_grad`` that leaves the module (buffers included) untouched."""
    return functional_call(module, _state(module, detach_params=True), args)


def reid_is_trained(ctx: StepContext) -> bool:
    """Whether the current step trains the re-id model (``--finetune-reid``)."""
    return any(p.requires_grad for p in ctx["reid"].parameters())


def reid_on_sr(ctx: StepContext) -> tuple[Tensor, Tensor]:
    """``(logits, f_c')`` of the re-id model on this iteration's SR batch, for G's terms.

    The graph reaches G only. A frozen re-id model runs as the step left it
    (normalisation in inference mode); one the step also trains runs the same
    way, through a forward with detached parameters, so G's ID and critic terms
    see the same model either way and never train the re-id model (its own
    training is :func:`reid_own_terms`).
    """
    if "G/reid_sr" not in ctx.cache:
        reid, x_sr = ctx["reid"], ctx.sr()
        if reid_is_trained(ctx):
            with inference_mode_layers(reid):
                ctx.cache["G/reid_sr"] = forward_without_param_grad(reid, x_sr)
        else:
            ctx.cache["G/reid_sr"] = reid(x_sr)
    return ctx.cache["G/reid_sr"]


def reid_own_terms(ctx: StepContext) -> dict[str, Tensor]:
    """``--finetune-reid``: the re-id model's own ID loss on SR and HR images, else ``{}``.

    One forward of the *detached* SR batch and the HR batch together (so its
    BatchNorm statistics are those of both, and no gradient of these terms
    reaches G, not even through the batch statistics), each term at the weight
    of the re-id model's own training: trained on SR alone it would drift away
    from the HR gallery it must still embed.
    """
    if not reid_is_trained(ctx):
        return {}
    x_sr = ctx.sr().detach()
    logits, _ = ctx["reid"](torch.cat([x_sr, ctx.batch.x_hr.to(x_sr.dtype)]))
    n, smooth = len(x_sr), ctx.config.label_smooth
    return {"reid_sr": identity_ce(logits[:n], ctx.batch.pids, smooth),
            "reid_hr": identity_ce(logits[n:], ctx.batch.pids, smooth)}


def disc_on_sr(ctx: StepContext, disc: str = "D") -> tuple[Tensor, Tensor]:
    """``(logit, f_d')`` of the discriminator on the SR batch, graph kept, once per G step.

    D is frozen in the G step, so the gradient flows through it to the SR
    image without accumulating on D's parameters.
    """
    key = f"G/{disc}_sr"
    if key not in ctx.cache:
        ctx.cache[key] = ctx[disc](ctx.sr())
    return ctx.cache[key]


def reid_features_for_critic(ctx: StepContext) -> Tensor:
    """``f_c'`` on SR for an association critic: a graph to G, never to the re-id parameters.

    The same forward as G's ID term (:func:`reid_on_sr`): normalisation in
    inference mode, parameters detached when the step fine-tunes the re-id model.
    """
    return reid_on_sr(ctx)[1]


def real_reid_features(ctx: StepContext) -> Tensor:
    """``f_c`` of the real HR batch: no gradient, re-id left untouched, cached per iteration."""
    if "reid_hr" not in ctx.cache:
        ctx.cache["reid_hr"] = observe(ctx["reid"], ctx.batch.x_hr)[1]
    return ctx.cache["reid_hr"]


def real_disc_features(ctx: StepContext, disc: str = "D") -> Tensor:
    """``f_d`` of the real HR batch under the *current* D: cached until D changes.

    D changes within an iteration (its own step), so the cache is keyed by the
    version counters of its parameters and buffers (host-side, no sync): the
    association step and the standardisation of its target share one forward.
    """
    module = ctx[disc]
    state = (*module.parameters(), *module.buffers())
    version = tuple(t._version for t in state)
    key = f"{disc}_hr"
    cached = ctx.cache.get(key)
    if cached is None or cached[0] != version:
        cached = ctx.cache[key] = (version, observe(module, ctx.batch.x_hr)[1])
    return cached[1]


# --------------------------------------------------------------------------
# The SR terms every G step shares
# --------------------------------------------------------------------------


def sr_terms(
    ctx: StepContext, lambda_c: float, lambda_g: float = 0.0, disc: str | None = "D"
) -> dict[str, Tensor]:
    """``L_sr`` as named, weighted terms: ``mse``, ``id`` (if lambda_c), ``gan`` (if lambda_g and D).

    Forwards are cached in ``ctx.cache`` so a critic term in the same step
    reuses them instead of running the models again.
    """
    x_sr = ctx.sr()
    terms = {"mse": pixel_mse(x_sr, ctx.batch.x_hr)}
    if lambda_c:
        logits, _ = reid_on_sr(ctx)
        terms["id"] = lambda_c * identity_ce(logits, ctx.batch.pids, ctx.config.label_smooth)
    terms.update(reid_own_terms(ctx))
    if lambda_g and disc is not None and disc in ctx.models:
        logit, _ = disc_on_sr(ctx, disc)
        terms["gan"] = lambda_g * gan_g_loss(logit)
    return terms
