"""The one verdict type of every task's verifier (:meth:`symlit.tasks.base.Task.verify`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """What a task's verifier decided about one hypothesis.

    ``status``: ``correct``, ``wrong``, or ``malformed`` (the hypothesis is not a well-formed
    answer: it does not parse, or holds tokens the notation does not know); ``method``: what
    decided (``exact``, ``value``, ``numeric``, ``structural``, ``simplify``, ``partial_domain``,
    ``parse``, ``timeout``...). True exactly when correct. Every task returns one, so verdict counts
    compare across tasks.
    """

    status: str
    method: str
    detail: str = ""

    STATUSES = ("correct", "wrong", "malformed")

    def __post_init__(self) -> None:
        if self.status not in self.STATUSES:
            raise ValueError(f"Verdict status {self.status!r} must be one of {self.STATUSES}")

    @classmethod
    def of(cls, ok: bool, method: str, detail: str = "") -> Verdict:
        """``correct`` or ``wrong`` by ``ok``."""
        return cls("correct" if ok else "wrong", method, detail)

    @property
    def ok(self) -> bool:
        return self.status == "correct"

    def __bool__(self) -> bool:
        return self.ok
