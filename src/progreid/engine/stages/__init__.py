"""The stages of a round, each a registry of named implementations that a preset picks:

    extract -> pseudo_label -> select -> fine_tune -> after_round -> evaluate

=============  =========================================  ======================================
stage          signature                                  registered
=============  =========================================  ======================================
pseudo_label   (ctx, state, features, seed) -> PseudoLabels  kmeans, moving_centers
select         (ctx, features, pseudo) -> Selection          similarity, temporal, all
fine_tune      (ctx, state, indices, classes, seed) -> FitStats  restart, continue
after_round    (ctx, state, pseudo) -> dict (row values)     center_update
=============  =========================================  ======================================

``ctx`` (:class:`~progreid.engine.context.RunContext`) is what a run knows and never changes;
``state`` (:class:`~progreid.engine.state.RunState`) is what crosses rounds and is saved with each.
Registries rather than ``if method == ...``: a new method is a preset naming its stages, and a new
stage is a decorated function anywhere (a user's file included), e.g.::

    @PSEUDO_LABELERS.register("mine")
    def my_labels(ctx, state, features, seed): ...

then ``progreid adapt --set stages.pseudo_label=mine``. A ``check`` given at registration runs
before any work (``temporal`` needs frame ids), so a wrong combination fails at once.
"""

from progreid.engine.stages.after_round import AFTER_ROUND
from progreid.engine.stages.fine_tune import FINE_TUNERS
from progreid.engine.stages.pseudo_label import PSEUDO_LABELERS, PseudoLabels
from progreid.engine.stages.selection import SELECTORS

__all__ = ["AFTER_ROUND", "FINE_TUNERS", "PSEUDO_LABELERS", "SELECTORS", "PseudoLabels"]
