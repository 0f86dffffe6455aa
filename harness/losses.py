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
bicubic. A run whose SR PSNR falls below bicubic's has let another term lead.
To reproduce the seed's summed form at ``H x W``, divide our weights by
``3 H W``.

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
the same step fine-tunes with the ID loss. The forwards a step shares (the SR
batch, the re-id model and D on it, the real-HR features) are memoised by
:class:`harness.context.StepContext`; the terms built from them are
:mod:`harness.steps`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

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


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, factor: float) -> Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.factor, None


def scale_gradient(x: Tensor, factor: float) -> Tensor:
    """``x`` unchanged, its gradient multiplied by ``factor`` on the way back.

    Why: a jointly trained cascade (SING) puts one ID loss on the SR image through a
    re-id model it also trains; the re-id parameters need that loss at full weight,
    while G must get it at ``lambda_c`` so the pixel loss still leads.
    """
    return _ScaleGradient.apply(x, float(factor))


def variance_hinge(z: Tensor, target_std: float = 1.0, eps: float = 1e-4) -> Tensor:
    """Mean over dims of ``relu(target_std - std)``: zero unless a dim collapses (VICReg)."""
    z = z.float()
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(target_std - std).mean()


def covariance_penalty(z: Tensor) -> Tensor:
    """Sum of squared off-diagonal covariances / dim: keeps dims from copying each other
    (VICReg)."""
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
