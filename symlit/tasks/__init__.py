"""Tasks: what to learn, how to make or load its data, and how to verify an answer."""

from symlit.tasks.arithmetic import ArithmeticTask
from symlit.tasks.base import Task
from symlit.tasks.files import FileTask

__all__ = ["ArithmeticTask", "FileTask", "Task"]
