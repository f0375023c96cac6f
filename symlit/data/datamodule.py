"""From a Task to batches: cached Arrow datasets, the tokenizer, and resumable loaders.

Generated data is stored with ``DatasetDict.save_to_disk`` under
``<cache_dir>/<TaskName>/<fingerprint>/``, where the fingerprint hashes the task configuration.
A build is written to a temporary directory and renamed into place only when complete; a
``symlit-dataset.json`` manifest records row counts and file checksums, so a partial or
corrupted cache is detected and rebuilt, never used.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from datasets import Dataset, DatasetDict, load_from_disk
from torch.utils.data import DataLoader

from symlit.core.processes import loader_worker_init
from symlit.data import leakage
from symlit.data.tokenizer import Seq2SeqTokenizer
from symlit.tasks.base import Task

log = logging.getLogger(__name__)
MANIFEST = "symlit-dataset.json"


# ---------------------------------------------------------------------------- dataset cache
def _checksums(directory: Path) -> dict[str, list]:
    out = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            digest = hashlib.sha256()
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            out[str(path.relative_to(directory))] = [path.stat().st_size, digest.hexdigest()]
    return out


def _check_cache(directory: Path, fingerprint: str) -> DatasetDict:
    """Load a cached build, raising ``ValueError`` with the reason if it is partial or corrupted."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise ValueError("no manifest (the build did not finish)")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("fingerprint") != fingerprint:
        raise ValueError(f"manifest fingerprint {manifest.get('fingerprint')} != {fingerprint}")
    if _checksums(directory) != manifest["files"]:
        raise ValueError("file sizes or checksums differ from the manifest")
    dataset = load_from_disk(str(directory))
    rows = {name: split.num_rows for name, split in dataset.items()}
    if rows != manifest["rows"]:
        raise ValueError(f"row counts {rows} differ from the manifest {manifest['rows']}")
    return dataset


def load_or_build(task: Task, cache_dir: str | Path, rebuild: bool = False) -> DatasetDict:
    """The task's splits as a ``DatasetDict``, from the cache when a valid build exists."""
    fingerprint = task.fingerprint()
    target = Path(cache_dir) / task.name / fingerprint
    if target.exists() and not rebuild:
        try:
            dataset = _check_cache(target, fingerprint)
            log.info("using cached dataset %s", target)
            return dataset
        except Exception as err:  # noqa: BLE001 - any failure to read means "rebuild"
            log.warning("cached dataset %s is unusable (%s); rebuilding it", target, err)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{fingerprint}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        splits = task.build()
        dataset = DatasetDict({name: Dataset.from_dict(rows) for name, rows in splits.items()})
        dataset.save_to_disk(str(tmp))
        leakage.write(leakage.leakage_report(task, splits), tmp)  # part of the checksummed build
        manifest = {
            "fingerprint": fingerprint,
            "task": task.config(),
            "rows": {name: split.num_rows for name, split in dataset.items()},
            "files": _checksums(tmp),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str))
        if target.exists():
            try:  # a concurrent job (another rank, an array task) finished the same build first
                return _check_cache(target, fingerprint)
            except Exception:  # noqa: BLE001 - a broken build: move it aside, then replace it
                stale = target.parent / f".{fingerprint}.stale-{uuid.uuid4().hex[:8]}"
                os.replace(target, stale)
                shutil.rmtree(stale, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("built dataset %s: %s", target, manifest["rows"])
    return _check_cache(target, fingerprint)


def build_tokenizer(task: Task, train: Dataset) -> Seq2SeqTokenizer:
    """The tokenizer for a task, built from its training split only."""
    if task.tokenizer_kind == "bpe":
        return Seq2SeqTokenizer.train_bpe(itertools.chain(train["source"], train["target"]), task.bpe_vocab_size)
    seen: set[str] = set()
    for column in ("source", "target"):
        for text in train[column]:
            seen.update(text.split())
    base = task.base_vocabulary()
    return Seq2SeqTokenizer.word_level([*base, *sorted(seen - set(base))])


# ---------------------------------------------------------------------------- tensors and batches
class TokenizedSplit(torch.utils.data.Dataset):
    """Token ids of one split in two flat arrays with offsets (compact, fast to index)."""

    def __init__(self, split: Dataset, tokenizer: Seq2SeqTokenizer) -> None:
        self.sources: list[str] = list(split["source"])
        self.targets: list[str] = list(split["target"])
        self.src, self.src_off = self._flat(tokenizer.encode_batch(self.sources))
        self.tgt, self.tgt_off = self._flat(tokenizer.encode_batch(self.targets))

    @staticmethod
    def _flat(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(s) for s in seqs])
        flat = np.fromiter((i for s in seqs for i in s), dtype=np.int32, count=int(offsets[-1]))
        return flat, offsets

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> int:
        return i  # the collator gathers ids by index

    def lengths(self) -> np.ndarray:
        return np.diff(self.src_off) + np.diff(self.tgt_off)

    def max_lengths(self) -> tuple[int, int]:
        return int(np.diff(self.src_off).max(initial=0)), int(np.diff(self.tgt_off).max(initial=0))


class Collator:
    """Pads a list of indices into ``src (B,S)``, ``tgt_in (B,T)`` (BOS + target), ``tgt_out`` (target + EOS)."""

    def __init__(self, split: TokenizedSplit, pad_id: int, bos_id: int, eos_id: int) -> None:
        self.split, self.pad_id, self.bos_id, self.eos_id = split, pad_id, bos_id, eos_id

    def __call__(self, indices: list[int]) -> dict[str, Any]:
        s = self.split
        srcs = [s.src[s.src_off[i] : s.src_off[i + 1]] for i in indices]
        tgts = [s.tgt[s.tgt_off[i] : s.tgt_off[i + 1]] for i in indices]
        src = np.full((len(indices), max(map(len, srcs))), self.pad_id, dtype=np.int64)
        tgt_in = np.full((len(indices), max(map(len, tgts)) + 1), self.pad_id, dtype=np.int64)
        tgt_out = tgt_in.copy()
        for row, (a, b) in enumerate(zip(srcs, tgts)):
            src[row, : len(a)] = a
            tgt_in[row, 0] = self.bos_id
            tgt_in[row, 1 : len(b) + 1] = b
            tgt_out[row, : len(b)] = b
            tgt_out[row, len(b)] = self.eos_id
        return {
            "src": torch.from_numpy(src),
            "tgt_in": torch.from_numpy(tgt_in),
            "tgt_out": torch.from_numpy(tgt_out),
            "sources": [s.sources[i] for i in indices],
            "targets": [s.targets[i] for i in indices],
        }


def mask_before_answer(tgt_out: torch.Tensor, separator_id: int, pad_id: int) -> torch.Tensor:
    """Labels for a loss on the answer only: ``tgt_out (B, T)`` with every position up to and including
    each row's last ``separator_id`` set to ``pad_id`` (ignored by the loss); rows without one are kept.
    Returns a new ``(B, T)`` tensor."""
    upto_last = (tgt_out == separator_id).flip(1).cumsum(1).flip(1) > 0  # (B, T): at or before the last one
    return tgt_out.masked_fill(upto_last, pad_id)


class EpochBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Deterministic batches: the order depends only on ``(seed, epoch)``.

    With ``bucket`` on, examples are shuffled, grouped into pools of ``pool`` batches, sorted by
    length inside each pool (less padding), cut into batches, and the batches shuffled. With
    ``world_size > 1`` the examples are cut into a multiple of ``world_size`` batches (sizes differ
    by at most one) and each rank takes every ``world_size``-th: every example is seen exactly once
    per epoch and every rank runs the same number of steps. ``skip`` batches are dropped from the
    front of the next iteration only (used when resuming mid-epoch).
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        shuffle: bool,
        seed: int,
        bucket: bool = True,
        pool: int = 50,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"data.batch_size={batch_size} must be positive")
        self.lengths, self.batch_size, self.shuffle, self.seed = lengths, batch_size, shuffle, seed
        self.bucket, self.pool, self.rank, self.world_size = bucket, pool, rank, world_size
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.skip = epoch, 0

    @property
    def sampler(self) -> EpochBatchSampler:
        """Lightning calls ``set_epoch`` on ``loader.batch_sampler.sampler`` at each epoch start."""
        return self

    def batches(self) -> list[list[int]]:
        n = len(self.lengths)
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if self.bucket:
            size = self.pool * self.batch_size
            order = (
                np.concatenate(
                    [
                        chunk[np.argsort(self.lengths[chunk], kind="stable")]
                        for chunk in np.split(order, range(size, n, size))
                    ]
                )
                if n
                else order
            )
        if self.world_size > 1:
            if n < self.world_size:
                raise ValueError(f"{n} examples cannot be shared by {self.world_size} ranks")
            n_batches = -(-n // self.batch_size)
            n_batches += (-n_batches) % self.world_size
            batches = [chunk.tolist() for chunk in np.array_split(order, n_batches)]
        else:
            batches = [order[i : i + self.batch_size].tolist() for i in range(0, n, self.batch_size)]
        if self.shuffle and self.bucket:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.batches()[self.skip :]
        self.skip = 0
        return iter(batches)

    def __len__(self) -> int:
        n_batches = -(-len(self.lengths) // self.batch_size)
        return -(-n_batches // self.world_size)  # = len(self.batches()) on every rank


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position inside an epoch is saved in checkpoints.

    Lightning calls ``state_dict``/``load_state_dict`` on loaders that have them; the state is
    the epoch and the number of batches already handed out in it, so a run resumed from a
    mid-epoch checkpoint sees exactly the batches an uninterrupted run would. Its worker processes
    die with the process that made the loader (:func:`symlit.core.processes.loader_worker_init`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("worker_init_fn", functools.partial(loader_worker_init, owner=os.getpid()))
        super().__init__(*args, **kwargs)
        self.consumed = 0

    def __iter__(self) -> Iterator[Any]:
        sampler: EpochBatchSampler = self.batch_sampler  # type: ignore[assignment]
        self.consumed = sampler.skip
        for batch in super().__iter__():
            self.consumed += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.batch_sampler.epoch, "consumed": self.consumed}  # type: ignore[union-attr]

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler: EpochBatchSampler = self.batch_sampler  # type: ignore[assignment]
        sampler.epoch, sampler.skip = int(state["epoch"]), int(state["consumed"])
        self.consumed = sampler.skip


# ---------------------------------------------------------------------------- the DataModule
class Seq2SeqDataModule(L.LightningDataModule):
    """Turns a :class:`~symlit.tasks.base.Task` into train/valid/test loaders.

    ``prepare_data`` builds (or finds) the cached dataset; :attr:`tokenizer` is built from the
    training split, or taken from ``tokenizer`` when resuming/evaluating a run.
    """

    def __init__(
        self,
        task: Task,
        cache_dir: str,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        bucket: bool = True,
        seed: int = 0,
        rebuild: bool = False,
        leak_free: bool | str = False,
        val_ood_rows: int | None = 256,
    ) -> None:
        super().__init__()
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise ValueError(
                f"data.batch_size={batch_size} and data.eval_batch_size={eval_batch_size} must be positive"
            )
        if num_workers < 0:
            raise ValueError(f"data.num_workers={num_workers} must be >= 0")
        self.task, self.cache_dir, self.rebuild = task, cache_dir, rebuild
        self.leak_free = leak_free
        if val_ood_rows is not None and (isinstance(val_ood_rows, bool) or val_ood_rows < 0):
            raise ValueError(f"data.val_ood_rows={val_ood_rows!r} must be a number of rows >= 0, or null for all")
        self.val_ood_rows = val_ood_rows
        self.leakage: dict[str, Any] | None = None
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.bucket, self.seed = num_workers, bucket, seed
        self._dataset: DatasetDict | None = None
        self._tokenizer: Seq2SeqTokenizer | None = None
        self.splits: dict[str, TokenizedSplit] = {}
        self._train_loader: ResumableDataLoader | None = None
        self._train_state: dict[str, int] | None = None

    # -- position in the training data, saved in checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The training loader's epoch and batches consumed (Lightning stores it in checkpoints)."""
        return {"train_loader": self._train_loader.state_dict()} if self._train_loader is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Lightning restores the datamodule before it first builds the training loader (to estimate
        # the number of steps), so the position is applied when that loader is created. Lightning
        # would restore the loader itself only if it built the loader after the checkpoint was read.
        self._train_state = state.get("train_loader")

    # -- data and tokenizer
    @property
    def dataset(self) -> DatasetDict:
        if self._dataset is None:
            self._dataset = load_or_build(self.task, self.cache_dir, self.rebuild)
            self.rebuild = False
            for name in ("train", "valid", "test"):
                if name not in self._dataset:
                    raise ValueError(f"task {self.task.name} produced no {name!r} split")
            self._check_leakage()
        return self._dataset

    # -- leakage report (symlit.data.leakage)
    def _check_leakage(self) -> None:
        """The build's leakage report (computed now for a cache that predates it); an error when
        ``leak_free`` is set and a split overlaps train."""
        stored = leakage.read(Path(self.cache_dir) / self.task.name / self.task.fingerprint())
        self.leakage = stored or leakage.leakage_report(self.task, self._dataset)
        leakage.check_leak_free(self.leakage, self.leak_free)

    def _publish_leakage(self) -> None:
        """Training start: the report in one log line, in the run directory and to the loggers."""
        if self.trainer is None:
            return
        self.dataset  # noqa: B018 - loads the data and its report
        assert self.leakage is not None
        log.info("%s", leakage.summary(self.leakage))
        if self.trainer.is_global_zero:
            leakage.write(self.leakage, self.trainer.default_root_dir)
        for logger in self.trainer.loggers:
            logger.log_metrics(leakage.metrics(self.leakage), step=0)

    def prepare_data(self) -> None:
        self.dataset  # noqa: B018 - builds or validates the cache on one process

    @property
    def tokenizer(self) -> Seq2SeqTokenizer:
        if self._tokenizer is None:
            self._tokenizer = build_tokenizer(self.task, self.dataset["train"])
        return self._tokenizer

    def use_tokenizer(self, tokenizer: Seq2SeqTokenizer) -> None:
        """Use a saved tokenizer (resume, evaluation) instead of building one."""
        self._tokenizer = tokenizer
        self.splits = {}

    @property
    def test_split_names(self) -> list[str]:
        return self.task.test_splits(self.dataset.keys())

    @property
    def val_split_names(self) -> list[str]:
        """The splits validated during training: the task's validation splits (``valid``, then any
        ``valid_<name>``, all rows), then (unless ``val_ood_rows`` is 0) every test split other than
        ``test`` on its first ``val_ood_rows`` rows, so out-of-distribution accuracy is a curve too."""
        ood = [s for s in self.test_split_names if s != "test" and self.val_ood_rows != 0]
        return [*self.task.validation_splits(self.dataset.keys()), *ood]

    def split(self, name: str) -> TokenizedSplit:
        if name not in self.splits:
            if name not in self.dataset:
                raise KeyError(f"no split {name!r}; available: {list(self.dataset)}")
            self.splits[name] = TokenizedSplit(self.dataset[name], self.tokenizer)
        return self.splits[name]

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self._publish_leakage()
        names = {
            "fit": ["train", *self.val_split_names],
            "validate": self.val_split_names,
            "test": self.test_split_names,
        }
        for name in names.get(stage or "fit", ["train", *self.val_split_names, *self.test_split_names]):
            self.split(name)

    # -- loaders
    def _loader(self, name: str, train: bool, rows: int | None = None) -> ResumableDataLoader:
        split = self.split(name)
        if rows is not None and rows < len(split):  # the first rows: a random subset (stored order)
            key = f"{name}[:{rows}]"
            if key not in self.splits:
                self.splits[key] = TokenizedSplit(self.dataset[name].select(range(rows)), self.tokenizer)
            split = self.splits[key]
        tok = self.tokenizer
        rank, world, overfit = 0, 1, False
        if self.trainer is not None:
            # every split is sharded across DDP ranks (the evaluation metrics and tallies are summed
            # over ranks, the test's rows gathered); a split with fewer rows than ranks is evaluated
            # whole by every rank (its ratios stay right)
            if train or len(split) >= self.trainer.world_size:
                rank, world = self.trainer.global_rank, self.trainer.world_size
            overfit = train and self.trainer.overfit_batches > 0
        # evaluation keeps the stored (random) order, so the first N batches are a random subset
        sampler = EpochBatchSampler(
            split.lengths(),
            self.batch_size if train else self.eval_batch_size,
            shuffle=train and not overfit,
            seed=self.seed,
            bucket=self.bucket and train and not overfit,
            rank=rank,
            world_size=world,
        )
        return ResumableDataLoader(
            split,
            batch_sampler=sampler,
            collate_fn=Collator(split, tok.pad_id, tok.bos_id, tok.eos_id),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        loader = self._loader("train", train=True)
        if self._train_state is not None:
            loader.load_state_dict(self._train_state)
            self._train_state = None
        self._train_loader = loader
        return loader

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        # during training the OOD test splits are validated on their first val_ood_rows rows (the test
        # uses all); validation splits always whole
        validation = set(self.task.validation_splits(self.dataset.keys()))
        loaders = [
            self._loader(name, train=False, rows=None if name in validation else self.val_ood_rows)
            for name in self.val_split_names
        ]
        return loaders if len(loaders) > 1 else loaders[0]

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader(name, train=False) for name in self.test_split_names]
