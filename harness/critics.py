"""Association critics: a map learned between ``f_c`` and ``f_d`` on real HR, frozen as G's critic.

INTACT's ``phi: f_c -> f_d`` and its rivals (a common space, ``f_d -> f_c``)
differ only in the maps they learn; what they share lives here: the
association step that trains the maps on real HR, the ``L_dis`` term that
penalises G with the frozen maps on SR, the standardisation of their inputs,
and the diagnostics (held-out R², which feature ``L_dis`` reaches G through).

A critic subclass defines three things: :meth:`AssociationCritic.build` (its
networks), :meth:`AssociationCritic.association_terms` (how they learn on real
HR) and :meth:`AssociationCritic.fit` (what the frozen critic predicts from
what). ``L_dis`` is the squared error of that prediction on SR features.

Standardised features (``critic_standardise``): the critics read ``f_d`` (and
the rivals ``f_c``) per dim by the real-HR batch at hand, in the association
step, ``L_dis`` and the probes alike (:func:`harness.losses.standardise`), so
the association error reads as ``1 - R²`` and one ``lambda_a`` suits every D.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from harness.context import StepContext
from harness.losses import association_mse, observe, standardise
from harness.options import Option, log_range
from harness.schedule import flat_norm
from harness.steps import GAN_OPTIONS, Step, Term

ASSOCIATION_OPTIONS: dict[str, Option] = {
    **GAN_OPTIONS,
    "lambda_a": Option(
        3e-5,
        "weight of the association critic L_dis in the G step (per-element MSE on a standardised "
        "target; 3e-5 gives L_dis 10-30% of G's gradient on the cpu preset, docs/intact.md)",
        min=0.0,
        search=log_range(3e-6, 3e-4),
    ),
    "phi_hidden": Option(256, "hidden width of the association networks", min=1),
    "phi_depth": Option(
        2, "linear layers in each association MLP (phi's encoder and decoder each)", min=1
    ),
    "bridge_dim": Option(64, "dim of the bridge / common space", min=1),
    "lr_phi": Option(
        1e-3,
        "learning rate of the association networks (1e-4 left the critic below R² 0 on "
        "held-out images after 300 iterations: D moves faster than it learned)",
        min=0.0,
        exclusive_min=True,
    ),
    "dis_paths": Option(
        "both",
        "which features L_dis's gradient reaches G through: both (Eq. 8 as written) or fc "
        "(f_d' detached: the critic acts through the re-id feature alone)",
        choices=("both", "fc"),
    ),
    "critic_standardise": Option(
        True,
        "standardise the critic's target feature per dim by the real-HR batch at hand, so "
        "its error is 1 - R² and one lambda_a suits every D",
        choices=(True, False),
    ),
}

#: options only G's step reads: a critic warm-up does not depend on them (harness.cache)
ASSOCIATION_GENERATOR_OPTIONS = ("lambda_c", "lambda_g", "lambda_a", "dis_paths")


class AssociationCritic:
    """Learned maps between the re-id feature ``f_c`` and D's feature ``f_d``.

    ``opts`` are the regulariser's resolved options (``ASSOCIATION_OPTIONS`` and
    the subclass's own).
    """

    #: the names of its networks: what its association step trains
    modules: tuple[str, ...] = ()

    def __init__(self, opts: Mapping[str, Any], disc: str = "D"):
        self.opts = opts
        self.disc = disc

    # -- what a critic defines ------------------------------------------------------
    def build(self, reid_dim: int, fd_dim: int) -> dict[str, nn.Module]:
        raise NotImplementedError

    def association_terms(self, ctx: StepContext, f_c: Tensor, f_d: Tensor) -> dict[str, Tensor]:
        """Named, weighted terms on real-HR features (no gradient to re-id or D)."""
        raise NotImplementedError

    def fit(self, ctx: StepContext, f_c: Tensor, f_d: Tensor) -> tuple[Tensor, Tensor]:
        """``(prediction, target)`` of the critic for features ``f_c``, ``f_d``."""
        raise NotImplementedError

    # -- what every critic shares ----------------------------------------------------
    def hidden(self) -> tuple[int, int]:
        """``(width, depth)`` of its MLPs."""
        return self.opts["phi_hidden"], self.opts["phi_depth"]

    def disc_input(self, ctx: StepContext, f_d: Tensor) -> Tensor:
        """``f_d`` standardised by the real-HR batch's (unchanged without
        ``critic_standardise``)."""
        if not self.opts["critic_standardise"]:
            return f_d
        return standardise(f_d, ctx.real_disc_features(self.disc))

    def reid_input(self, ctx: StepContext, f_c: Tensor) -> Tensor:
        """``f_c`` standardised by the real-HR batch's (unchanged without
        ``critic_standardise``)."""
        return (
            standardise(f_c, ctx.real_reid_features()) if self.opts["critic_standardise"] else f_c
        )

    def distance(self, ctx: StepContext, f_c: Tensor, f_d: Tensor) -> Tensor:
        """Unweighted ``L_dis``: the critic's squared error on these features."""
        return association_mse(*self.fit(ctx, f_c, f_d))

    def association_loss(self, ctx: StepContext) -> dict[str, Tensor]:
        return self.association_terms(
            ctx, ctx.real_reid_features(), ctx.real_disc_features(self.disc)
        )

    def step(self, lr: float) -> Step:
        """The association step: the critic's networks on real HR, re-id and D frozen."""
        return Step("assoc", self.modules, self.association_loss, lr={m: lr for m in self.modules})

    def _sr_features(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        f_c = ctx.reid_on_sr()[1]
        f_d = ctx.disc_on_sr(self.disc)[1]
        return f_c, (f_d.detach() if self.opts["dis_paths"] == "fc" else f_d)

    def term(self, weight: float) -> Term:
        """``L_dis`` on the SR batch at ``weight``, through the forwards G's other terms made."""
        return Term(
            "dis",
            weight,
            lambda ctx: self.distance(ctx, *self._sr_features(ctx)),
            diagnose=self.dis_paths,
        )

    def dis_paths(self, ctx: StepContext, terms: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """How much of ``L_dis``'s gradient on G arrives through ``f_c'`` and through ``f_d'``.

        ``dis_path_share/fc = |g_fc| / (|g_fc| + |g_fd|)``, where ``g_fc`` is the
        gradient on G's parameters of ``L_dis`` backpropagated through ``f_c'`` alone
        (the re-id path) and ``g_fd`` through ``f_d'`` alone (D's path). Near 0: the
        term acts as feature matching on D and carries little identity information.
        """
        if "dis" not in terms:
            return {}
        features = self._sr_features(ctx)
        params = [p for p in ctx["G"].parameters() if p.requires_grad]
        wanted = [f for f in features if f.requires_grad]
        grads = iter(
            torch.autograd.grad(terms["dis"], wanted, retain_graph=True, allow_unused=True)
        )
        norms = []
        for feature in features:
            grad = next(grads) if feature.requires_grad else None
            if grad is None:
                norms.append(torch.zeros((), device=terms["dis"].device))
                continue
            norms.append(
                flat_norm(
                    torch.autograd.grad(
                        feature, params, grad_outputs=grad, retain_graph=True, allow_unused=True
                    )
                )
            )
        total = (norms[0] + norms[1]).clamp_min(1e-30)
        return {"dis_path_share/fc": norms[0] / total, "dis_path_share/fd": norms[1] / total}

    def probe(self, ctx: StepContext) -> dict[str, float]:
        """The critic's R² on held-out real HR and its gap on their SR.

        ``critic_r2 = 1 - MSE / Var(target)`` (the variance per dim, averaged): 0 is
        a critic that learned only the mean of its target, 1 a perfect one.
        ``critic_gap`` = the critic's error on SR minus its error on HR: what
        ``L_dis`` (unweighted) can still push G to close.
        """
        pred, target = self.fit(ctx, ctx.real_reid_features(), ctx.real_disc_features(self.disc))
        error_hr = association_mse(pred, target)
        variance = target.float().var(dim=0, unbiased=False).mean().clamp_min(1e-12)
        _, f_c_sr = observe(ctx["reid"], ctx.sr())
        _, f_d_sr = observe(ctx[self.disc], ctx.sr())
        error_sr = self.distance(ctx, f_c_sr, f_d_sr)
        return {
            "critic_r2": float(1 - error_hr / variance),
            "critic_gap": float(error_sr - error_hr),
        }
