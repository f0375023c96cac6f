"""Tasks for the verifier-pool tests, in a module of their own: pool workers import the task's
module, and this one imports nothing heavier than symlit.tasks (a test module would bring torch,
Lightning and Hydra into every worker)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from symlit.core.verdict import Verdict
from symlit.tasks import ArithmeticTask


@dataclass
class TrickyTask(ArithmeticTask):
    """Arithmetic whose verifier hangs on the hypothesis ``hang`` and raises on ``boom``."""

    def verify(self, source: str, target: str, hypothesis: str) -> Verdict:
        if hypothesis == "hang":
            while True:
                time.sleep(0.05)
        if hypothesis == "boom":
            raise ZeroDivisionError("malformed")
        return super().verify(source, target, hypothesis)
