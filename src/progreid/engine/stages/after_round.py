"""After-round stages: update what crosses rounds once the model was fine-tuned.

Interface: ``fn(ctx, state, pseudo) -> dict`` of values for the round's metrics row.
"""

from __future__ import annotations

from typing import Any, Callable

from progreid.cluster.centers import center_shift, update_centers
from progreid import distributed
from progreid.engine.context import RunContext
from progreid.engine.stages.pseudo_label import PseudoLabels
from progreid.engine.state import RunState
from progreid.errors import ProgReIDError
from progreid.registry import Registry

AfterRound = Callable[[RunContext, RunState, PseudoLabels], dict[str, Any]]
AFTER_ROUND: Registry[AfterRound] = Registry("after_round")


def _needs_moving_centers(ctx: RunContext) -> None:
    if ctx.cfg.stages.pseudo_label != "moving_centers":
        raise ProgReIDError(f"stages.after_round center_update moves the centers that stages.pseudo_label "
                            f"moving_centers keeps, but pseudo_label is {ctx.cfg.stages.pseudo_label!r}. "
                            "Fix: drop center_update or use moving_centers.")


@AFTER_ROUND.register("center_update", check=_needs_moving_centers,
                      reads=("cluster.center_update", "cluster.beta"))
def move_centers(ctx: RunContext, state: RunState, pseudo: PseudoLabels) -> dict[str, Any]:
    """TCUL (eq. 6-7): c_k <- c_k - lambda_c * sum_{l_i = k} (c_k - f_i) / (beta + n_k), with the
    features of the fine-tuned model (kept in ``state.features`` for the next round's labels)."""
    state.features = ctx.extract_train(state.model)
    old = state.arrays["centers"]

    def move() -> float:  # on rank 0, which holds the features; the others receive the centers
        state.arrays["centers"] = update_centers(old, ctx.pool_features(state.features), pseudo.labels,
                                                 ctx.cfg.cluster.center_update, ctx.cfg.cluster.beta)
        return center_shift(old, state.arrays["centers"])

    return {"center_shift": round(distributed.on_main_then_share(move, state), 5)}
