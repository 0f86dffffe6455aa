"""``sing``: SR and re-id learned jointly (Jiao et al., AAAI 2018, "Deep Low-Resolution
Person Re-Identification"; the SING network).

One step per iteration trains G *and* the re-id model: the pixel loss on G's
output, and the identity loss of the re-id model on the SR image and on the HR
image, both through the re-id model's own parameters. The re-id model is
trained on what G gives it, G on what the re-id model needs: the joint
objective the paper calls SR-ID. No discriminator.

Scale (our departure, see docs/methods.md): the paper sums ``L_id + lambda L_sr``
with per-image losses; here the pixel loss is a per-element mean (about 2e-3),
so the ID loss reaches G through :func:`harness.losses.scale_gradient` at
``lambda_c`` while the re-id parameters get it at full weight. Test time: SR,
then the jointly trained re-id model.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from harness import Option, Regulariser, RunConfig, Step, StepContext, hookimpl
from harness.losses import scale_gradient
from harness.steps import SR_OPTIONS, generator_step, identity_on_sr_and_hr, pixel


def joint_identity_terms(lambda_c: float):
    """The ID loss on SR and HR through the re-id model the step trains (one forward of both,
    so its BatchNorm statistics are those of both); G gets the SR half at ``lambda_c``."""

    def terms(ctx: StepContext) -> dict[str, Tensor]:
        return identity_on_sr_and_hr(ctx, scale_gradient(ctx.sr(), lambda_c))

    return terms


class SingRegulariser(Regulariser):
    """G and the re-id model in one step on ``MSE + ID(SR) + ID(HR)``."""

    name = "sing"
    options: ClassVar[dict[str, Option]] = SR_OPTIONS

    def schedule(self, config: RunConfig) -> list[Step]:
        return [
            generator_step(
                config,
                pixel(),
                joint_identity_terms(self.opts["lambda_c"]),
                trainable=("G", "reid"),
            )
        ]


@hookimpl
def harness_register_regularisers(registry) -> None:
    registry.add(
        "sing",
        SingRegulariser,
        "SING (Jiao et al. 2018): SR and re-id trained jointly on MSE + ID(SR) + ID(HR)",
        options=SingRegulariser.options,
    )
