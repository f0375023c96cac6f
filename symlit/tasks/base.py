"""The Task interface: the unit of extension in symlit.

A task produces ``(source, target)`` text pairs split into named splits, says how its text is
tokenized, and verifies a hypothesis. Adding a task means one module under ``symlit/tasks`` and
one YAML file under ``conf/data/``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from symlit.core.config import digest
from symlit.core.verdict import Verdict

Rows = dict[str, list[Any]]
"""Columns of a split: at least ``source`` and ``target`` (strings), optional metadata columns."""

REPO_ROOT = Path(__file__).resolve().parents[2]


def resolve_data_path(key: str, path: str, repo_fallback: bool = False, hint: str = "") -> Path:
    """The existing file or directory ``data.task.<key>=path`` names, else ``FileNotFoundError``
    naming the key. With ``repo_fallback`` a relative path is also looked up under the repository
    root (so shipped samples under ``data_samples/`` are found from anywhere)."""
    p = Path(path).expanduser()
    for candidate in (p, REPO_ROOT / p) if repo_fallback else (p,):
        if candidate.exists():
            return candidate.resolve()
    where = f" (nor under {REPO_ROOT})" if repo_fallback else ""
    raise FileNotFoundError(f"data.task.{key}={path} does not exist{where}{hint}")


def check_fractions(valid_fraction: float, test_fraction: float) -> None:
    """``data.task.valid_fraction`` and ``test_fraction`` are each in [0, 1) and leave rows for training."""
    for name, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"data.task.{name}={value} must be in [0, 1)")
    if valid_fraction + test_fraction >= 1.0:
        raise ValueError("data.task.valid_fraction + data.task.test_fraction must leave data for training")


NO_EOS = "(no end of sequence)"
"""How :meth:`Task.show` writes a hypothesis that never ended."""


class Task(ABC):
    """Base class of every task.

    Subclasses are dataclasses whose fields are the task's configuration; :meth:`fingerprint`
    hashes those fields, so generated data is cached per configuration.

    What defines a task (its vocabulary, verifier, notation) is kept apart from where its data
    comes from (:meth:`data_paths`): paths are checked only when data is built
    (:meth:`check_data`), never when a task is constructed, so a checkpoint's task loads, verifies
    and renders on a machine without the training files.
    """

    #: look relative data paths up under the repository root too (shipped samples)
    data_repo_fallback: bool = False

    #: bump when generated data changes for the same configuration, to invalidate caches
    version: int = 1
    #: ``"word"`` (closed vocabulary, whitespace-separated tokens) or ``"bpe"`` (trained subwords)
    tokenizer_kind: str = "word"
    bpe_vocab_size: int = 0

    @property
    def name(self) -> str:
        return type(self).__name__

    def config(self) -> dict[str, Any]:
        """The fields that define the task, with ``_target_`` so Hydra can rebuild it."""
        fields = dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}
        return {"_target_": f"{type(self).__module__}.{type(self).__qualname__}", **fields}

    def fingerprint(self) -> str:
        """Hex digest of the configuration; the cache key of generated data."""
        return digest({"config": self.config(), "version": self.version})

    def data_paths(self) -> dict[str, str]:
        """Where the data comes from: ``{config key: path}`` of every file or directory the task
        reads (empty for generated data)."""
        return {}

    def check_data(self) -> dict[str, Path]:
        """The resolved :meth:`data_paths`; ``FileNotFoundError`` naming the key of a missing one.
        Called when data is built (and fingerprinted), not when the task is constructed."""
        return {k: resolve_data_path(k, v, self.data_repo_fallback) for k, v in self.data_paths().items()}

    @abstractmethod
    def build(self) -> dict[str, Rows]:
        """Produce every split: ``train``, ``valid``, ``test`` and any extra (out-of-distribution) test split."""

    def base_vocabulary(self) -> list[str]:
        """Tokens that belong to the vocabulary even if the training data misses them."""
        return []

    def digit_tokens(self) -> list[str]:
        """Tokens that are digits of a number written digit by digit (Abacus positions index them)."""
        return []

    def digits_lsb_first(self) -> tuple[bool, bool]:
        """Whether the numbers of the source and of the target are written least significant digit
        first (coupled positions index digits by significance)."""
        return False, False

    @abstractmethod
    def verify(self, source: str, target: str, hypothesis: str) -> Verdict:
        """Whether ``hypothesis`` is a correct answer for ``source`` (whose reference is ``target``):
        a :class:`Verdict` (``correct``, ``wrong`` or ``malformed``, and the method that decided).

        A malformed hypothesis is a ``malformed`` verdict, not an exception (an exception is
        counted as a verifier ``error``). May be slow: evaluation runs it in worker processes with
        a time limit, so a task must be picklable.
        """

    def bucket(self, source: str, target: str) -> str:
        """A label for per-bucket accuracy in evaluation reports (digits, operators, process...)."""
        return "all"

    #: names of the extra scores :meth:`scores` returns (logged as ``<stage>/<name>``)
    score_names: tuple[str, ...] = ()

    def scores(self, source: str, target: str, hypothesis: str, verdict: Verdict) -> dict[str, float]:
        """Extra per-hypothesis scores (the names in :attr:`score_names`) averaged into metrics;
        ``verdict`` is what :meth:`verify` decided for this hypothesis (not to be recomputed)."""
        return {}

    # ------------------------------------------------------------------ training-time metrics (symlit.review.dashboard)
    def tally_keys(self, split: str) -> tuple[str, ...]:
        """Fixed keys of ``split``'s hit/count metrics, the same on every rank and epoch (``()``: none).

        Logged as ``<stage prefix>/<key>`` (``val/acc_by_pos/3``, ``test/d20/acc_by_len/20``) by
        :class:`symlit.review.dashboard.SplitMetrics`, which sums hits and counts over batches and DDP
        ranks before dividing.
        """
        return ()

    def tally(
        self, source: str, target: str, hypothesis: str | None, correct: bool | Verdict
    ) -> dict[str, tuple[int, int]]:
        """``(hits, count)`` of one greedy hypothesis under keys of :meth:`tally_keys` (``None``: no EOS)."""
        return {}

    def figures(self, predictions: dict[str, list[tuple[str, str, str | None, bool]]]) -> dict[str, Figure]:
        """Pictures of the final test, by file stem: ``predictions`` maps each test split to its
        ``(source, target, greedy hypothesis, correct)`` rows. Saved as ``<run dir>/<stem>.png``
        and logged as W&B images; the caller closes the figures. Default: none."""
        return {}

    #: the levels of :meth:`canonical_key`, finest first (empty: the task defines no key)
    key_levels: tuple[str, ...] = ()

    def canonical_key(self, source: str, target: str) -> dict[str, str]:
        """Keys of one problem by level (see :attr:`key_levels`): equal keys mean the same problem
        up to that level's symmetry (commuted operands, renamed coefficients, a relabelled Feynman
        diagram...). The leakage report (:mod:`symlit.data.leakage`) counts evaluation rows whose key
        occurs in train. Default: no key."""
        return {}

    @property
    def leak_free_level(self) -> str | None:
        """The key level at which this task's splits never share a key (what ``data.leak_free:
        true`` checks, besides identical sources); ``None``: only sources are kept apart."""
        return None

    def validation_splits(self, split_names: Iterable[str]) -> list[str]:
        """The held-out splits for validation and checkpoint selection, never tested: ``valid``,
        then every split named ``valid_<name>`` in name order (e.g. long problems, so that a length
        study selects its checkpoint on rows the test splits do not hold)."""
        names = set(split_names)
        return [s for s in ("valid",) if s in names] + sorted(s for s in names if s.startswith("valid_"))

    def test_splits(self, split_names: Iterable[str]) -> list[str]:
        """The splits evaluated at test time: ``test`` first, then the extra ones (every split that is
        neither ``train`` nor a validation split, see :meth:`validation_splits`)."""
        names = [s for s in split_names if s != "train" and s != "valid" and not s.startswith("valid_")]
        return sorted(names, key=lambda s: (s != "test", s))

    # ------------------------------------------------------------------ interactive use (symlit-predict)
    def parse_input(self, text: str) -> str:
        """Source tokens of a user's input; by default the input is already whitespace-separated tokens.

        Raises ``ValueError`` with a message for the user when ``text`` is not a valid input.
        """
        tokens = text.split()
        if not tokens:
            raise ValueError("empty input")
        return " ".join(tokens)

    def render(self, tokens: str) -> str:
        """Readable text of a source or target token sequence; by default the tokens themselves."""
        return tokens

    def show(self, tokens: str | None) -> str:
        """:meth:`render` of a decoded sequence; ``None`` (decoding stopped before an end of
        sequence) is said so."""
        return NO_EOS if tokens is None else self.render(tokens)

    def example_input(self) -> str:
        """What a user may type, as ``symlit-predict``'s prompt names it."""
        return "space-separated tokens"

    def embedding_groups(self, vocabulary: list[str]) -> dict[str, list[str]]:
        """The tokens whose embeddings ``symlit-inspect`` draws, by group; by default every token of
        ``vocabulary`` that is not special (``<...>``)."""
        return {"token": [t for t in vocabulary if not (t.startswith("<") and t.endswith(">"))]}

    def reference(self, source: str) -> str | None:
        """The target to verify hypotheses for ``source`` against, when there is no dataset row.

        The answer when the task can compute it cheaply, ``""`` when :meth:`verify` needs no
        reference, ``None`` (the default) when hypotheses cannot be verified without one.
        """
        return None


def exact_match(target: str, hypothesis: str) -> bool:
    """Token-sequence equality (whitespace-insensitive)."""
    return target.split() == hypothesis.split()
