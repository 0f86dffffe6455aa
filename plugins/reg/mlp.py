"""Small MLPs for association networks (phi, sigma, the common-space maps).

Hidden layers use LeakyReLU(0.2): ``f_d`` itself comes out of a LeakyReLU
and can be negative, and a dead ReLU unit on a small batch would silently
shrink the critic. The output layer is linear so any target range is reachable.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def mlp(in_dim: int, out_dim: int, hidden: int = 256, depth: int = 2) -> nn.Sequential:
    """``depth`` linear layers ``in_dim -> hidden -> ... -> out_dim`` (depth 1: one linear map)."""
    if depth < 1 or hidden < 1 or in_dim < 1 or out_dim < 1:
        raise ValueError(
            f"an MLP needs depth >= 1 and positive dims (got in={in_dim}, out={out_dim}, "
            f"hidden={hidden}, depth={depth})"
        )
    dims = [in_dim] + [hidden] * (depth - 1) + [out_dim]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < depth - 1:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class RunningStandardiser(nn.BatchNorm1d):
    """Per-dim standardisation by running statistics that start from the first batch.

    A BatchNorm (so every frozen read puts it in inference mode and it changes
    nothing, :data:`harness.schedule.STATEFUL_LAYERS`) with two differences that
    make it a standardiser rather than a layer: it normalises with its running
    statistics in training mode too, so the association step and the frozen
    reads of the G step measure on one scale; and its average starts from the
    first batch (a cumulative mean until ``1 / n`` falls below ``momentum``,
    then an exponential one) instead of from mean 0 and variance 1, which
    ``f_d``'s small early scale would take a hundred steps to forget.
    """

    def __init__(self, dim: int, momentum: float = 0.05):
        super().__init__(dim, eps=1e-8, affine=False, momentum=momentum)

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            with torch.no_grad():
                factor = max(float(self.momentum or 0.0), 1.0 / (int(self.num_batches_tracked) + 1))
                features = x.detach().float()
                self.running_mean.lerp_(features.mean(0), factor)
                self.running_var.lerp_(features.var(0, unbiased=False), factor)
                self.num_batches_tracked.add_(1)
        return (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)


class EncoderDecoder(nn.Module):
    """``decoder ∘ encoder`` through a bridge space of ``bridge_dim``.

    The bridge code is layer-normalised without affine parameters: a bridge
    loss on it (``L_e``) could otherwise be driven to zero by shrinking the
    code while the decoder scales it back up, a trivial solution that teaches
    sigma nothing.

    ``target`` standardises what the network predicts (``standardise``): each
    dim of the target feature to zero mean and unit variance, a BatchNorm
    without affine parameters. Why: ``f_d``'s scale is whatever D's training
    made it, so ``||phi(f_c) - f_d||^2`` and its weight would drift with it,
    and the bridge term ``L_e`` (on a unit-variance code) would dwarf or vanish
    beside it. Standardised, the error is ``1 - R²`` of the fit, on the scale of
    ``L_e``. The association step (which trains this network) normalises with
    its real-HR batch's statistics and updates the running ones; every frozen
    read (the G step on SR, the probes) uses the running statistics, so SR and
    HR features are measured on one scale.
    """

    def __init__(self, in_dim: int, out_dim: int, bridge_dim: int, hidden: int, depth: int,
                 standardise: bool = False):
        super().__init__()
        self.encoder = mlp(in_dim, bridge_dim, hidden, depth)
        self.norm = nn.LayerNorm(bridge_dim, elementwise_affine=False)
        self.decoder = mlp(bridge_dim, out_dim, hidden, depth)
        self.target: nn.Module = RunningStandardiser(out_dim) if standardise else nn.Identity()
        self.in_dim, self.out_dim, self.bridge_dim = in_dim, out_dim, bridge_dim

    def encode(self, x: Tensor) -> Tensor:
        return self.norm(self.encoder(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encode(x))
