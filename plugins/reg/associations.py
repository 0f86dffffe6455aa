"""Rivals of INTACT that learn the association elsewhere (Fig. 5 / Table 4 of Cheng et al.).

Both run INTACT's schedule (D step, association step on real HR, G step with
the frozen critic: :class:`crossres_plugins.reg.intact.IntactRegulariser`) with another
:class:`harness.critics.AssociationCritic`; they differ only in the maps they learn:

``common-space`` (Fig. 5 a): ``enc_c: f_c -> z`` and ``enc_d: f_d -> z``, learned
together on ``||enc_c(f_c) - enc_d(f_d)||^2``; G is penalised by
``||enc_c(f_c') - enc_d(f_d')||^2`` on SR. Learned alone, that objective has a
trivial minimum (both maps output one constant ``z``), which would make the
critic say nothing. The collapse guard is VICReg's (Bardes et al., ICLR 2022):
a hinge keeping every dim's std across the batch >= 1 and a penalty on
off-diagonal covariance, for both ``z_c`` and ``z_d``, weighted ``cs_var`` and
``cs_cov`` (VICReg's 25:25:1 invariance:variance:covariance ratio, i.e. 1 and
0.04). Layer-normalising ``z`` would not do: a constant unit vector is still
a collapse. The guard trains the maps only; G sees the plain distance.

``d-to-r`` (Fig. 5 b): ``phi: f_d -> f_c`` learned on ``||phi(f_d) - f_c||^2``;
G is penalised by ``||phi(f_d') - f_c'||^2`` (``f_c`` standardised per dim by
the real-HR batch's, as INTACT standardises ``f_d``). ``phi`` has INTACT's architecture
(encoder, normalised code, decoder) with the dims swapped.

Both read ``f_c`` and ``f_d`` standardised per dim by the real-HR batch at
hand (``critic_standardise``, :meth:`harness.critics.AssociationCritic.disc_input`): a fresh
D's ``f_d`` varies by a fraction of a percent across images, so a map reading
it raw predicts a constant (measured: d-to-r's held-out R² 0.02 after 125
warm-up iterations) and a common space collapses onto its bias.

Distances are ``F.mse_loss`` as in INTACT; gradients reach G through ``f_c'``
and ``f_d'``, never the re-id parameters, D or the maps.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from harness import Option, StepContext, hookimpl
from harness.critics import ASSOCIATION_OPTIONS, AssociationCritic
from harness.losses import association_mse, covariance_penalty, variance_hinge

from .intact import IntactRegulariser
from .mlp import EncoderDecoder, mlp

COMMON_SPACE_OPTIONS: dict[str, Option] = {
    **ASSOCIATION_OPTIONS,
    "cs_var": Option(1.0, "collapse guard: weight of the per-dim std hinge on z (VICReg)", min=0.0),
    "cs_cov": Option(
        0.04, "collapse guard: weight of the off-diagonal covariance of z (VICReg)", min=0.0
    ),
}


class CommonSpaceCritic(AssociationCritic):
    """``enc_c(f_c)`` and ``enc_d(f_d)`` meet in a shared space ``z`` of ``bridge_dim``."""

    modules = ("enc_c", "enc_d")

    def build(self, reid_dim: int, fd_dim: int) -> dict[str, nn.Module]:
        hidden, depth = self.hidden()
        z_dim = self.opts["bridge_dim"]
        return {
            "enc_c": mlp(reid_dim, z_dim, hidden, depth),
            "enc_d": mlp(fd_dim, z_dim, hidden, depth),
        }

    def association_terms(self, ctx: StepContext, f_c: Tensor, f_d: Tensor) -> dict[str, Tensor]:
        z_c, z_d = self.fit(ctx, f_c, f_d)
        return {
            "assoc": association_mse(z_c, z_d),
            "var": self.opts["cs_var"] * (variance_hinge(z_c) + variance_hinge(z_d)),
            "cov": self.opts["cs_cov"] * (covariance_penalty(z_c) + covariance_penalty(z_d)),
        }

    def fit(self, ctx: StepContext, f_c: Tensor, f_d: Tensor) -> tuple[Tensor, Tensor]:
        return ctx["enc_c"](self.reid_input(ctx, f_c)), ctx["enc_d"](self.disc_input(ctx, f_d))


class DToRCritic(AssociationCritic):
    """``phi: f_d -> f_c``, the reverse of INTACT's direction."""

    modules = ("phi",)

    def build(self, reid_dim: int, fd_dim: int) -> dict[str, nn.Module]:
        hidden, depth = self.hidden()
        return {"phi": EncoderDecoder(fd_dim, reid_dim, self.opts["bridge_dim"], hidden, depth)}

    def association_terms(self, ctx: StepContext, f_c: Tensor, f_d: Tensor) -> dict[str, Tensor]:
        return {"assoc": association_mse(*self.fit(ctx, f_c, f_d))}

    def fit(self, ctx: StepContext, f_c: Tensor, f_d: Tensor) -> tuple[Tensor, Tensor]:
        return ctx["phi"](self.disc_input(ctx, f_d)), self.reid_input(ctx, f_c)


class CommonSpace(IntactRegulariser):
    """INTACT's schedule with the association learned in a common space (Fig. 5 a)."""

    name = "common-space"
    options: ClassVar[dict[str, Option]] = COMMON_SPACE_OPTIONS

    def make_critic(self) -> AssociationCritic:
        return CommonSpaceCritic(self.opts)


class DToR(IntactRegulariser):
    """INTACT's schedule with the association learned D-to-R (Fig. 5 b)."""

    name = "d-to-r"
    options: ClassVar[dict[str, Option]] = ASSOCIATION_OPTIONS

    def make_critic(self) -> AssociationCritic:
        return DToRCritic(self.opts)


@hookimpl
def harness_register_regularisers(registry) -> None:
    registry.add(
        "common-space",
        CommonSpace,
        "f_c and f_d mapped to a common space z (VICReg collapse guard); G penalised there",
        options=CommonSpace.options,
    )
    registry.add(
        "d-to-r",
        DToR,
        "phi maps f_d -> f_c on real HR; G penalised by ||phi(f_d') - f_c'||^2",
        options=DToR.options,
    )
