import json

import numpy as np
import pytest
import torch

from symlit.data.datamodule import MANIFEST, EpochBatchSampler, ResumableDataLoader, Seq2SeqDataModule, load_or_build
from symlit.tasks import ArithmeticTask


def small_task(**fields) -> ArithmeticTask:
    return ArithmeticTask(**{"n_train": 300, "n_valid": 50, "n_test": 50, **fields})


def test_cache_is_reused(tmp_path, monkeypatch):
    task = small_task()
    first = load_or_build(task, tmp_path)
    calls = []
    monkeypatch.setattr(ArithmeticTask, "build", lambda self: calls.append(1) or {})
    again = load_or_build(task, tmp_path)
    assert not calls, "a valid cache must not be rebuilt"
    assert again["train"]["source"] == first["train"]["source"]
    assert len(list((tmp_path / "ArithmeticTask").iterdir())) == 1
    monkeypatch.undo()
    load_or_build(small_task(seed=5), tmp_path)  # a different config gets its own directory
    assert len(list((tmp_path / "ArithmeticTask").iterdir())) == 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_manifest", "drop_file"])
def test_partial_or_corrupted_cache_is_rebuilt(tmp_path, damage):
    task = small_task()
    original = load_or_build(task, tmp_path)["test"]["source"]
    directory = tmp_path / "ArithmeticTask" / task.fingerprint()
    arrow = next(directory.rglob("*.arrow"))
    if damage == "truncate":
        arrow.write_bytes(arrow.read_bytes()[:100])
    elif damage == "flip":
        data = bytearray(arrow.read_bytes())
        data[-50] ^= 0xFF
        arrow.write_bytes(bytes(data))
    elif damage == "no_manifest":
        (directory / MANIFEST).unlink()
    else:
        arrow.unlink()
    rebuilt = load_or_build(task, tmp_path)
    assert rebuilt["test"]["source"] == original
    manifest = json.loads((directory / MANIFEST).read_text())
    assert manifest["rows"]["test"] == 50
    assert not [p for p in directory.parent.iterdir() if p.name.startswith(".")], "temporary dirs left behind"


def test_sampler_is_deterministic_and_covers_each_example_once():
    lengths = np.random.default_rng(0).integers(3, 20, size=1000)
    a = EpochBatchSampler(lengths, 32, shuffle=True, seed=7)
    b = EpochBatchSampler(lengths, 32, shuffle=True, seed=7)
    assert list(a) == list(b)
    assert sorted(i for batch in a for i in batch) == list(range(1000))
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first


@pytest.mark.parametrize("n", [1000, 97, 3])
@pytest.mark.parametrize("bucket", [True, False])
def test_rank_shards_see_every_example_exactly_once_with_equal_steps(n, bucket):
    lengths = np.arange(n) % 17
    for epoch in (0, 1):
        samplers = [EpochBatchSampler(lengths, 32, True, 0, bucket=bucket, rank=r, world_size=3) for r in range(3)]
        for s in samplers:
            s.set_epoch(epoch)
        shards = [list(s) for s in samplers]
        assert len({len(s) for s in shards}) == 1 and len(shards[0]) == len(samplers[0])
        seen = sorted(i for shard in shards for batch in shard for i in batch)
        assert seen == list(range(n))
        assert max(len(b) for shard in shards for b in shard) <= 32


def test_loader_resumes_mid_epoch_with_the_same_batches():
    lengths = np.arange(200) % 11

    def loader():
        sampler = EpochBatchSampler(lengths, 16, shuffle=True, seed=3)
        return ResumableDataLoader(list(range(200)), batch_sampler=sampler, collate_fn=torch.tensor)

    full = loader()
    full.batch_sampler.set_epoch(2)
    expected = [b.tolist() for b in full]
    interrupted = loader()
    interrupted.batch_sampler.set_epoch(2)
    it = iter(interrupted)
    seen = [next(it).tolist() for _ in range(5)]
    state = interrupted.state_dict()
    assert state == {"epoch": 2, "consumed": 5}
    resumed = loader()
    resumed.load_state_dict(state)
    resumed.batch_sampler.set_epoch(2)  # Lightning calls this at epoch start; it must not reset the position
    assert seen + [b.tolist() for b in resumed] == expected


def test_datamodule_batches_and_tokenizer(tmp_path):
    dm = Seq2SeqDataModule(small_task(ood={"more": {"digits": 3, "n": 20}}), str(tmp_path), batch_size=16)
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    tok = dm.tokenizer
    assert batch["src"].shape[0] == 16
    assert (batch["tgt_in"][:, 0] == tok.bos_id).all()
    for row in range(16):  # tgt_out is tgt_in shifted left, ending in EOS
        n = int((batch["tgt_out"][row] != tok.pad_id).sum())
        assert batch["tgt_out"][row, n - 1] == tok.eos_id
        assert torch.equal(batch["tgt_out"][row, : n - 1], batch["tgt_in"][row, 1:n])
        assert tok.decode(batch["src"][row].tolist()) == batch["sources"][row]
        assert tok.decode(batch["tgt_out"][row].tolist()) == batch["targets"][row]
    assert dm.test_split_names == ["test", "more"]
    assert [len(dl.dataset) for dl in dm.test_dataloader()] == [50, 20]


@pytest.mark.parametrize(("rows", "validated"), [(256, [50, 20]), (5, [50, 5]), (None, [50, 20]), (0, [50])])
def test_ood_splits_are_validated_on_their_first_val_ood_rows(tmp_path, rows, validated):
    task = small_task(ood={"more": {"digits": 3, "n": 20}})
    dm = Seq2SeqDataModule(task, str(tmp_path), batch_size=16, val_ood_rows=rows)
    dm.prepare_data()
    dm.setup("fit")
    loaders = dm.val_dataloader()
    loaders = loaders if isinstance(loaders, list) else [loaders]
    assert dm.val_split_names == ["valid", "more"][: len(validated)]
    assert [len(dl.dataset) for dl in loaders] == validated
    if rows == 5:  # the first rows of the stored (random) order
        assert loaders[1].dataset.sources == list(dm.dataset["more"]["source"][:5])
    assert [len(dl.dataset) for dl in dm.test_dataloader()] == [50, 20]  # the test uses every row


def test_valid_named_splits_are_validated_whole_and_never_tested(tmp_path):
    # a length study selects its checkpoint on valid_long: held out from train and from the test splits
    # both drawn from the ~80 one-digit sums, so they would overlap unless each excludes the other
    task = small_task(ood={"more": {"digits": 1, "n": 20}, "valid_long": {"digits": 1, "n": 30}})
    dm = Seq2SeqDataModule(task, str(tmp_path), batch_size=16, val_ood_rows=5)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.val_split_names == ["valid", "valid_long", "more"]
    assert [len(dl.dataset) for dl in dm.val_dataloader()] == [50, 30, 5]
    assert dm.test_split_names == ["test", "more"]
    held_out = set(dm.dataset["valid_long"]["source"])
    assert len(held_out) == 30
    for other in ("train", "valid", "test", "more"):
        assert not held_out & set(dm.dataset[other]["source"]), other


def test_lightning_advances_the_sampler_epoch():
    from lightning.fabric.utilities.data import _set_sampler_epoch  # what the fit loop calls each epoch

    sampler = EpochBatchSampler(np.arange(100) % 7, 10, shuffle=True, seed=0)
    loader = ResumableDataLoader(list(range(100)), batch_sampler=sampler, collate_fn=torch.tensor)
    first = list(sampler)
    _set_sampler_epoch(loader, 1)
    assert sampler.epoch == 1 and list(sampler) != first


def test_evaluation_loaders_are_sharded_across_ranks(tmp_path):
    """Under DDP each rank evaluates its own share of every split: together the ranks see every
    row exactly once, in the same number of batches (the metrics are summed over ranks)."""
    from types import SimpleNamespace

    dm = Seq2SeqDataModule(small_task(ood={"more": {"digits": 3, "n": 20}}), str(tmp_path), batch_size=16)
    dm.prepare_data()
    dm.setup("fit")
    seen: dict[str, list[list[str]]] = {"valid": [], "test": [], "more": []}
    for rank in range(2):
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=2, overfit_batches=0)  # what Lightning's DDP sets
        loaders = {"valid": dm.val_dataloader()[0], "test": dm.test_dataloader()[0], "more": dm.test_dataloader()[1]}
        for name, loader in loaders.items():
            seen[name].append([s for batch in loader for s in batch["sources"]])
    for name, (first, second) in seen.items():
        assert sorted(first + second) == sorted(dm.dataset[name]["source"]), name
        assert first and second, name
    # a split with fewer rows than ranks is evaluated whole by every rank
    dm.trainer = SimpleNamespace(global_rank=1, world_size=64, overfit_batches=0)
    assert sum(len(b["sources"]) for b in dm.test_dataloader()[1]) == 20
