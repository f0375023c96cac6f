"""QED tasks: SYMBA files and generated data, leak-free splits, verification, configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy

from symlit.core.verdict import Verdict
from symlit.qed import symba_format as sf
from symlit.qed.generator import diagrams, enumerate_processes
from symlit.qed.tokens import to_tokens
from symlit.tasks import QEDGeneratedTask, QEDSymbaTask

pytestmark = pytest.mark.xdist_group("test_qed_task")  # pytest-xdist: the module-scoped fixture is built once

SAMPLE = Path(__file__).resolve().parents[1] / "data_samples" / "symba-qed-2to2" / "valid.csv"


@pytest.fixture(scope="module")
def splits():
    return QEDSymbaTask(path=str(SAMPLE), valid_fraction=0.1, test_fraction=0.1).build()


def test_symba_task_splits_without_leaks(splits):
    assert sum(len(s["source"]) for s in splits.values()) == 1556
    train = set(splits["train"]["source"])
    for name in ("valid", "test"):
        assert splits[name]["source"] and not train & set(splits[name]["source"])
    assert not set(splits["valid"]["source"]) & set(splits["test"]["source"])


def test_whole_processes_and_particles_can_be_held_out():
    s = QEDSymbaTask(path=str(SAMPLE), split_by="process", holdout_particles=["tt"], max_rows=400).build()
    procs = {k: set(v["process"]) for k, v in s.items()}
    assert not procs["train"] & procs["valid"] and not procs["train"] & procs["test"]
    assert all("tt" in p.split() or "tt~" in p.split() for p in procs["holdout"])
    assert not any("tt" in p for p in procs["train"])


def test_relative_path_is_found_from_the_repo_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    task = QEDSymbaTask(path="data_samples/symba-qed-2to2/valid.csv", max_rows=5)
    assert task.check_data()["path"].is_file() and len(task.build()["train"]["source"]) > 0
    with pytest.raises(FileNotFoundError, match="data.task.path"):
        QEDSymbaTask(path="nowhere.csv").build()  # checked when data is built


def test_bad_row_is_named(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text('amp,sqamp\n"e^2*gamma_{\\INDEX_0,INDEX_1,INDEX_2}","e^2 +"\n')
    with pytest.raises(ValueError, match=r"bad.csv:2: field 'amp'"):  # no external legs: not a diagram
        QEDSymbaTask(path=str(bad)).build()


@pytest.mark.parametrize(
    "sqamp, problem",
    [
        ("nan", r"unknown symbols \['nan'\]"),
        ("hello*world", r"unknown symbols \['hello', 'world'\]"),
        ("e^4*s_19", r"unknown symbols \['s_19'\]"),
        ("e^4 +", "expression ends early"),
    ],
)
def test_bad_sqamp_is_an_error_or_skipped_and_counted(tmp_path, sqamp, problem):
    lines = SAMPLE.read_text().splitlines()
    amp = next(iter(__import__("csv").reader([lines[2]])))[0]
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([*lines[:4], f'"{amp.replace(chr(34), chr(34) * 2)}","{sqamp}"', *lines[4:8]]) + "\n")
    with pytest.raises(ValueError, match=rf"bad.csv:5: field 'sqamp': {problem}.*data.task.skip_bad_rows"):
        QEDSymbaTask(path=str(bad)).build()
    task = QEDSymbaTask(path=str(bad), skip_bad_rows=True, split_by="row")
    splits = task.build()
    assert task.skipped_rows == 1 and sum(len(s["source"]) for s in splits.values()) == 7


def check_equivalent_forms(task, source: str, target: str) -> None:
    """An amplitude task accepts the target and its expanded form, and rejects twice the target."""
    assert task.verify(source, target, target)
    expr = task.decode(target)
    assert task.verify(source, target, " ".join(to_tokens(sympy.expand(expr), task.notation)))
    assert not task.verify(source, target, " ".join(to_tokens(2 * expr, task.notation)))


def test_verify_accepts_exact_and_equivalent_forms_only(splits):
    task = QEDSymbaTask(path=str(SAMPLE))
    source, target = splits["test"]["source"][0], splits["test"]["target"][0]
    # on shell: s_11 = m^2 for a massive leg, so an equivalent form may use either
    check_equivalent_forms(task, source, target)
    malformed = task.verify(source, target, "add( INT+")
    assert (malformed.status, malformed.method) == ("malformed", "parse") and "NotationError" in malformed.detail
    assert task.verify(source, target, target) == Verdict("correct", "exact")
    scores = task.scores(source, target, target, task.verify(source, target, target))
    assert scores == {"token_score": 1.0, "numeric_equiv": 1.0}
    # numeric_equiv is the verdict verify() gave, not a second numeric check
    assert task.scores(source, target, target, Verdict("wrong", "numeric"))["numeric_equiv"] == 0.0
    assert " -> " in task.bucket(source, target)


def test_on_shell_equivalence_counts():
    task = QEDSymbaTask(path=str(SAMPLE))
    amp, _ = sf.read_symba_file(str(SAMPLE))[0]  # b b -> b b: p_1 is an on-shell b quark
    source = " ".join(sf.amplitude_tokens(sf.parse(amp), task.notation))
    t = " ".join(to_tokens(sf.parse_sqamp("e^4*s_11*s_12"), task.notation))
    h = " ".join(to_tokens(sf.parse_sqamp("e^4*m_b^2*s_12"), task.notation))
    assert task.verify(source, t, h)


def test_generated_task_builds_and_verifies():
    task = QEDGeneratedTask(particles=["e", "mu", "A"], valid_fraction=0.2, test_fraction=0.2)
    s = task.build()
    n = sum(len(v["source"]) for v in s.values())
    procs = enumerate_processes(2, 2, particles=["e", "mu", "A"])
    assert n == sum(len(list(diagrams(p))) for p in procs) == 34  # every 2 -> 2 diagram of e, mu, A
    for split in s.values():
        for src, tgt in zip(split["source"], split["target"]):
            assert task.verify(src, tgt, tgt)
    base = QEDGeneratedTask(particles=["e", "A"])
    assert base.fingerprint() == QEDGeneratedTask(particles=["e", "A"], workers=2).fingerprint()
    assert base.fingerprint() != QEDGeneratedTask(particles=["e", "A"], level="process").fingerprint()


def test_experiments_compose(make_cfg):
    from hydra.utils import instantiate

    for exp in ("qed_symba_cpu", "qed_symba"):
        cfg = make_cfg(f"experiment={exp}")
        assert cfg.data.task._target_ == "symlit.tasks.QEDSymbaTask"
        task = instantiate(cfg.data.task)
        assert task.check_data()["path"].is_file()
    assert make_cfg("experiment=qed_symba").model.n_heads == 8
    cfg = make_cfg("experiment=qed_symba_cpu", "data=qed_generated")
    assert instantiate(cfg.data.task).shapes == ["2to2"]
    cfg = make_cfg("experiment=qed_generated_cpu")
    task = instantiate(cfg.data.task)
    assert task.shapes == ["2to2", "2to3"] and task.split_by == "process_family" and cfg.data.leak_free
    assert instantiate(make_cfg("experiment=qed_generated_cpu", "debug=fast_dev_run").data.task).smoke is True


def test_sharded_generation_resumes_losing_at_most_the_shard_in_progress(tmp_path):
    from symlit.qed.generator import generate, generate_sharded, row_record

    procs = enumerate_processes(2, 2, particles=["e", "mu", "A"])[:7]

    def timeless(rows) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    full = timeless(generate_sharded(procs, str(tmp_path), shard_size=3))
    assert full == timeless(row_record(r) for r in generate(procs))
    shards = sorted(tmp_path.glob("shard-*.jsonl"))
    assert len(shards) == 3
    stamp = {p.name: p.stat().st_mtime_ns for p in shards}
    # an interrupted run: the shard in progress was never renamed into place, a temporary file is left
    shards[1].rename(tmp_path / "shard-00001.tmp999")
    assert timeless(generate_sharded(procs, str(tmp_path), shard_size=3)) == full
    assert {p.name: p.stat().st_mtime_ns for p in sorted(tmp_path.glob("shard-*.jsonl"))} != stamp
    assert all(p.stat().st_mtime_ns == stamp[p.name] for p in (shards[0], shards[2]))  # finished shards kept
    with pytest.raises(ValueError, match="holds shards of other processes or settings"):
        generate_sharded(procs[:5], str(tmp_path), shard_size=3)
