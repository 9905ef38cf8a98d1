"""The estimate of a verify folder, as ``verify --score`` prints it and the page shows it."""

from __future__ import annotations

from pathlib import Path

from progreid.verify.answers import current_answers, judged
from progreid.verify.estimate import describe_difference, estimate, format_estimate
from progreid.verify.session import Session


def score(session: Session, folder: str | Path, standing: dict[int, dict[str, object]] | None = None) -> dict[str, object]:
    """``estimate`` over the standing answers (read from ``folder`` unless given), with its text (the
    same lines ``--score`` prints)."""
    answers = judged(current_answers(folder) if standing is None else standing)
    ranked = {q: session.queries[q].ranked for q in answers}
    est = estimate(session.models, ranked, answers, session.seed)
    est["text"] = format_estimate(est)
    est["difference_text"] = (describe_difference(est["difference"], "B", est["queries"])
                              if est.get("difference") else "")
    return est
