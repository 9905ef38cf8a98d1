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
before any work (``temporal`` needs frame ids), so a wrong combination fails at once. ``reads``
given at registration names the settings only that implementation uses: ``unread_settings`` then
says which of the settings a user chose no stage of their run reads.
"""

from __future__ import annotations

from typing import Iterable

from progreid.config import StagesConfig
from progreid.engine.stages.after_round import AFTER_ROUND
from progreid.engine.stages.fine_tune import FINE_TUNERS
from progreid.engine.stages.pseudo_label import PSEUDO_LABELERS, PseudoLabels
from progreid.engine.stages.selection import SELECTORS

__all__ = ["AFTER_ROUND", "FINE_TUNERS", "PSEUDO_LABELERS", "SELECTORS", "PseudoLabels", "all_reads", "unread_settings"]


def unread_settings(stages: StagesConfig, keys: Iterable[str]) -> list[str]:
    """Those of ``keys`` (dotted settings) that some stage declares it reads but none of the run's
    ``stages`` does: e.g. ``select.frame_window`` in a run that selects by similarity."""
    chosen = [(PSEUDO_LABELERS, stages.pseudo_label), (SELECTORS, stages.select), (FINE_TUNERS, stages.fine_tune),
              *((AFTER_ROUND, name) for name in stages.after_round)]
    read = {key for registry, name in chosen for key in registry.reads(name)}
    declared = all_reads()
    return [key for key in keys if key in declared and key not in read]


def all_reads() -> set[str]:
    """Every setting some registered stage declares it reads."""
    return set().union(*(r.all_reads() for r in (PSEUDO_LABELERS, SELECTORS, FINE_TUNERS, AFTER_ROUND)))
