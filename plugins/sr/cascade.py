"""``csr``: a cascade of x2 SRResNet stages (the generator of CSR-GAN, Wang et al., IJCAI 2018).

CSR-GAN reaches x4 by two x2 SR-GANs in a row, each supervised at its own
scale. Here stage k upsamples by 2 (the last stage to the exact output size),
so ratio 2 runs one stage, ratios 3 and 4 run two; each stage is an
:class:`~crossres_plugins.sr.srresnet.SRResNet` (residual on bicubic, exactly
bicubic when untrained).

The intermediate image of the most recent forward is kept as
``last_intermediate`` (``None`` when one stage sufficed): the ``csr-gan``
regulariser supervises it at its scale. It is a plain attribute, not state:
``state_dict`` and checkpoints do not hold it.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from harness import Option, RunConfig, hookimpl, read_options

from .srresnet import SRResNet

CASCADE_OPTIONS = {
    "csr_blocks": Option(
        4,
        "residual blocks in each stage of the cascade",
        presets={"smoke": 1, "cpu": 3, "paper": 8},
        min=1,
    ),
    "csr_channels": Option(
        64, "feature channels of each stage", presets={"smoke": 16, "cpu": 32, "paper": 64}, min=1
    ),
}


def stage_sizes(in_size: tuple[int, int], out_size: tuple[int, int]) -> list[tuple[int, int]]:
    """The output size of each stage: doubling until the next doubling would pass ``out_size``."""
    ratio = max(o / i for i, o in zip(in_size, out_size, strict=True))
    stages = max(1, math.ceil(math.log2(ratio) - 1e-6))
    sizes = [
        (min(i * 2**k, o) for i, o in zip(in_size, out_size, strict=True)) for k in range(1, stages)
    ]
    return [tuple(s) for s in sizes] + [tuple(out_size)]  # type: ignore[misc]


class CascadeSR(nn.Module):
    """``stages`` SRResNets in a row, each doubling the size (the last one to ``out_size``)."""

    def __init__(self, stages: int = 2, blocks: int = 4, channels: int = 64):
        super().__init__()
        self.stages = nn.ModuleList([SRResNet(blocks, channels) for _ in range(stages)])
        self.last_intermediate: Tensor | None = None

    def forward(self, x_lr: Tensor, out_size: tuple[int, int]) -> Tensor:
        in_size = (int(x_lr.shape[-2]), int(x_lr.shape[-1]))
        sizes = stage_sizes(in_size, (int(out_size[0]), int(out_size[1])))
        sizes = sizes[-len(self.stages) :]  # more doublings than stages: the last stages go further
        x, self.last_intermediate = x_lr, None
        for k, size in enumerate(sizes):
            x = self.stages[len(self.stages) - len(sizes) + k](x, size)
            if k < len(sizes) - 1:
                self.last_intermediate = x
        return x


def build_cascade(config: RunConfig) -> nn.Module:
    opts = read_options(config, CASCADE_OPTIONS)
    return CascadeSR(stages=2, blocks=opts["csr_blocks"], channels=opts["csr_channels"])


@hookimpl
def harness_register_sr(registry) -> None:
    registry.add(
        "csr",
        build_cascade,
        "cascaded SR (CSR-GAN's generator): x2 SRResNet stages, one for x2, two for x3/x4",
        options=CASCADE_OPTIONS,
    )
