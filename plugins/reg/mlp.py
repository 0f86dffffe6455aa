"""Small MLPs for association networks (phi, sigma, the common-space maps).

Hidden layers use LeakyReLU(0.2): ``f_d`` itself comes out of a LeakyReLU
and can be negative, and a dead ReLU unit on a small batch would silently
shrink the critic. The output layer is linear so any target range is reachable.
"""

from __future__ import annotations

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


class EncoderDecoder(nn.Module):
    """``decoder ∘ encoder`` through a bridge space of ``bridge_dim``.

    The bridge code is layer-normalised without affine parameters: a bridge
    loss on it (``L_e``) could otherwise be driven to zero by shrinking the
    code while the decoder scales it back up, a trivial solution that teaches
    sigma nothing.
    """

    def __init__(self, in_dim: int, out_dim: int, bridge_dim: int, hidden: int, depth: int):
        super().__init__()
        self.encoder = mlp(in_dim, bridge_dim, hidden, depth)
        self.norm = nn.LayerNorm(bridge_dim, elementwise_affine=False)
        self.decoder = mlp(bridge_dim, out_dim, hidden, depth)
        self.in_dim, self.out_dim, self.bridge_dim = in_dim, out_dim, bridge_dim

    def encode(self, x: Tensor) -> Tensor:
        return self.norm(self.encoder(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encode(x))
