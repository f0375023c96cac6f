"""Tasks: what to learn, how to make or load its data, and how to verify an answer."""

from symlit.tasks.arithmetic import ArithmeticTask
from symlit.tasks.base import Task
from symlit.tasks.calculus import CalculusTask
from symlit.tasks.files import FileTask
from symlit.tasks.qcd import QCDGeneratedTask
from symlit.tasks.qed import QEDGeneratedTask, QEDSymbaTask

__all__ = [
    "ArithmeticTask",
    "CalculusTask",
    "FileTask",
    "QCDGeneratedTask",
    "QEDGeneratedTask",
    "QEDSymbaTask",
    "Task",
    "task_from_config",
]


def task_from_config(cfg: dict) -> Task:
    """The task a ``data.task`` config (composed, or saved in a checkpoint) describes."""
    from hydra.utils import instantiate

    return instantiate(dict(cfg), _convert_="all")
