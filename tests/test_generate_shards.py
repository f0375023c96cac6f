"""``symlit-generate`` as a job array: deterministic shards, resume after a kill, merge, CLI errors.

Real Hydra composition and real generation (``prim_bwd`` with at most 4 operators, the cheapest
generator), in temporary directories.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir

from symlit.calculus import engine, shards
from symlit.core.config import config_dir
from symlit.data.generate import run

ROOT = Path(__file__).resolve().parents[1]
# fast: no simplification, so no sample near a time limit: the pairs do not depend on the load
BASE = [
    "data=prim_bwd",
    "data.task.max_ops=4",
    "data.task.fast=true",
    "n_valid=2",
    "n_test=2",
    "workers=0",
    "progress=false",
    "seed=3",
]


@pytest.fixture(autouse=True)
def cpu_time_limits(monkeypatch):
    """Per-sample limits in CPU seconds in the workers and subprocesses, as the sbatch template sets
    them (``fast`` in BASE already keeps ``simplify``, whose time limit a loaded machine would hit, out)."""
    monkeypatch.setenv("SYMLIT_TIME_LIMITS", "cpu")


def _cfg(tmp_path: Path, out: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("generate", overrides=[*BASE, f"paths.root_dir={tmp_path}", f"output_dir={out}", *overrides])


def _pairs(out: Path, index: int, n: int, n_shards: int) -> list[tuple[str, str]]:
    directory = out / shards.shard_name(index)
    return [(r["source"], r["target"]) for r in engine.prefix_rows(directory, shards.shard_target(n, n_shards, index))]


def _command(out: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "symlit.data.generate", *BASE, f"output_dir={out}", *overrides]


def kill_after_files(proc: subprocess.Popen, arrow: Path, n_files: int) -> None:
    """SIGKILL ``proc`` once ``arrow`` holds ``n_files`` Arrow files (the kill point), within 300 s."""
    try:
        deadline = time.monotonic() + 300
        while len(list(arrow.glob("shard-*.arrow"))) < n_files:
            assert proc.poll() is None, "symlit-generate exited before the kill point"
            assert time.monotonic() < deadline, f"no {n_files} Arrow files in 300 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_a_shard_depends_on_seed_and_index_only_not_on_the_array_size(tmp_path):
    run(_cfg(tmp_path, tmp_path / "a", "n=60", "n_shards=2", "shard=1"))
    run(_cfg(tmp_path, tmp_path / "a", "n=60", "n_shards=2", "shard=0"))
    run(_cfg(tmp_path, tmp_path / "b", "n=120", "n_shards=4", "shard=1"))  # the same target, 30
    run(_cfg(tmp_path, tmp_path / "c", "n=60", "n_shards=2", "shard=1", "seed=4"))
    one = _pairs(tmp_path / "a", 1, 60, 2)
    assert len({s for s, _ in one}) == 30
    assert _pairs(tmp_path / "b", 1, 120, 4) == one
    # another index, another seed: other pairs (a few equal ones: four operators make a small space)
    for other in (_pairs(tmp_path / "a", 0, 60, 2), _pairs(tmp_path / "c", 1, 60, 2)):
        assert len(set(other) & set(one)) < 10
    # other chunk_attempts cut other chunks: the merge refuses shards made with other settings
    with pytest.raises(
        ValueError, match=r"shard-0000/generator.json was generated with other settings \(chunk_attempts"
    ):
        run(_cfg(tmp_path, tmp_path / "a", "n=60", "n_shards=2", "merge=true", "chunk_attempts=8"))


def test_workers_do_not_change_a_shard(tmp_path):
    run(_cfg(tmp_path, tmp_path / "a", "n=80", "n_shards=2", "shard=0"))
    run(_cfg(tmp_path, tmp_path / "b", "n=80", "n_shards=2", "shard=0", "workers=2"))
    assert _pairs(tmp_path / "b", 0, 80, 2) == _pairs(tmp_path / "a", 0, 80, 2)


def test_a_killed_array_task_resumes_where_it_stopped(tmp_path):
    out, n = tmp_path / "killed", 80
    arrow = out / "shard-0000" / "shards"
    proc = subprocess.Popen(
        _command(out, f"n={n}", "n_shards=1", "shard=0", "shard_size=4"),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    kill_after_files(proc, arrow, 4)
    before = {p.name: p.read_bytes() for p in arrow.glob("shard-*.arrow")}
    done = {c for _, meta in engine.iter_shards(out / "shard-0000") for c in meta["chunks"]}
    assert len(engine.unique_rows(engine.prefix_rows(out / "shard-0000", n))) < n  # killed mid-run

    run(_cfg(tmp_path, out, f"n={n}", "n_shards=1", "shard=0", "shard_size=4"))
    for name, data in before.items():  # nothing written before the kill is lost or rewritten
        assert (arrow / name).read_bytes() == data
    names = sorted(p.name for p in arrow.glob("shard-*.arrow"))  # iter_shards reads them in this order
    metas = dict(zip(names, (meta for _, meta in engine.iter_shards(out / "shard-0000"))))
    new_chunks = {c for name, meta in metas.items() if name not in before for c in meta["chunks"]}
    assert new_chunks and not done & new_chunks  # no chunk generated twice
    run(_cfg(tmp_path, tmp_path / "whole", f"n={n}", "n_shards=1", "shard=0"))
    assert _pairs(out, 0, n, 1) == _pairs(tmp_path / "whole", 0, n, 1)  # the same data as an uninterrupted run
    status = (out / "shard-0000" / shards.STATUS_FILE).read_text()
    assert '"complete": true' in status


def _arrow_files(directory: Path) -> list[tuple[int, dict]]:
    """(rows, engine metadata) of each Arrow file of a shard directory, in file order."""
    return [(table.num_rows, meta) for table, meta in engine.iter_shards(directory)]


def _drop_cpu_field(path: Path) -> None:
    """Rewrite an Arrow file as older code wrote it: the same rows, metadata without ``cpu_s``."""
    import pyarrow as pa

    table = pa.ipc.open_file(pa.py_buffer(path.read_bytes())).read_all()  # in memory: the file is rewritten
    meta = json.loads(table.schema.metadata[engine.META_KEY])
    del meta[engine.CPU_KEY]
    table = table.replace_schema_metadata({engine.META_KEY: json.dumps(meta).encode()})
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def test_a_killed_run_s_finished_files_count_in_the_merged_throughput(tmp_path):
    """SIGKILL leaves no run in shard.json, but each finished Arrow file records the CPU seconds of
    its chunks (measured in the worker): the merge reports them and their pairs."""
    out, n = tmp_path / "killed", 80
    directory = out / "shard-0000"
    cmd = _command(out, f"n={n}", "n_shards=1", "shard=0", "shard_size=4", "workers=1")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_after_files(proc, directory / "shards", 3)
    assert not (directory / shards.STATUS_FILE).exists()  # the killed run recorded nothing
    files = _arrow_files(directory)
    assert all(meta[engine.CPU_KEY] > 0 for _, meta in files)
    rows = sum(r for r, _ in files)

    summary = run(_cfg(tmp_path, out, f"n={n}", "n_shards=1", "merge=true", "allow_partial=true"))
    timing = summary["per_shard"][0]
    assert timing["runs"] == timing["pairs_timed"] == 0 and timing["pairs_per_cpu_hour"] is None
    assert timing["files"] == timing["timed_files"] == len(files) >= 3
    assert timing["pairs_in_files"] == timing["pairs_in_timed_files"] == rows > 0
    assert timing["cpu_s_in_files"] == round(sum(meta[engine.CPU_KEY] for _, meta in files), 2) > 0
    assert timing["pairs_per_cpu_hour_in_files"] > 0 and timing["cpu_unmeasured_chunks"] == 0
    assert json.loads((out / "summary.json").read_text())["per_shard"][0] == timing


def test_files_of_older_code_without_cpu_seconds_merge_as_untimed(tmp_path):
    out = tmp_path / "gen"
    args = ["n=30", "n_shards=1", "shard_size=4"]
    run(_cfg(tmp_path, out, *args, "shard=0"))  # workers=0: timed in this process
    directory = out / "shard-0000"
    paths = sorted((directory / "shards").glob("shard-*.arrow"))
    files = _arrow_files(directory)
    assert len(paths) == len(files) >= 3 and all(meta[engine.CPU_KEY] > 0 for _, meta in files)
    for path in paths[1:]:  # the first file stays timed, the others as older code wrote them
        _drop_cpu_field(path)
    assert [engine.CPU_KEY in meta for _, meta in _arrow_files(directory)] == [True] + [False] * (len(files) - 1)

    summary = run(_cfg(tmp_path, out, *args, "merge=true"))
    timing = summary["per_shard"][0]
    assert timing["files"] == len(files) and timing["timed_files"] == 1
    assert timing["pairs_in_files"] == sum(r for r, _ in files) and timing["pairs_in_timed_files"] == files[0][0]
    assert timing["cpu_s_in_files"] == round(files[0][1][engine.CPU_KEY], 2)
    assert timing["runs"] == 1 and timing["pairs_timed"] == timing["pairs_in_files"]  # shard.json: as before

    _drop_cpu_field(paths[0])  # no file timed
    identity = {"config": summary["generator"], "seed": "3", "chunk_attempts": 16}
    timing = shards.read_shard(out, 0, 30, 1, identity).throughput()
    assert (timing["timed_files"], timing["pairs_in_timed_files"], timing["cpu_s_in_files"]) == (0, 0, 0)
    assert timing["pairs_per_cpu_hour_in_files"] is None and timing["files"] == len(files)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_a_chunk_abandoned_at_its_deadline_counts_its_worker_cpu(tmp_path):
    """A worker still starting (importing SymPy) overruns a 0.3 CPU-second chunk deadline: each of the
    two chunks is abandoned, and the Arrow file holding them counts the CPU its worker spent."""
    from symlit.calculus.generators import GeneratorConfig

    config = GeneratorConfig(task="prim_bwd", max_ops=4)
    report = engine.generate(
        config, tmp_path, 5, workers=1, chunk_attempts=4, chunk_timeout=0.3, max_attempts=8, progress=False
    )
    assert report.causes == {"chunk_timeout": 8}
    [(rows, meta)] = _arrow_files(tmp_path)
    assert rows == 0 and meta["chunks"] == [0, 1] and "cpu_unmeasured" not in meta
    assert meta[engine.CPU_KEY] >= 2 * 0.3 - 0.05  # at least the deadline, each (/proc ticks: 0.01 s)


def test_sigterm_writes_the_finished_chunks_records_the_run_and_exits_143(tmp_path):
    """SLURM sends SIGTERM before it requeues or kills a task: the chunks done so far (below the
    Arrow file size, so not yet written) are kept, the run is recorded, and a rerun completes the
    same data as an uninterrupted run."""
    import re
    import threading

    out, n = tmp_path / "termed", 300
    cmd = _command(out, f"n={n}", "n_shards=1", "shard=0", "workers=1", "progress=true")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    reached = threading.Event()

    def watch() -> None:  # the kill point: the progress bar shows >= 20 distinct equations
        text = b""
        while chunk := proc.stderr.read1(4096):
            text = (text + chunk)[-4096:]
            counts = re.findall(rb"(\d+)/300", text)
            if counts and int(counts[-1]) >= 20:
                reached.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        assert reached.wait(300), "the run did not reach 20 equations in 300 s"
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 143
    finally:
        proc.kill()
        proc.wait()
    status = json.loads((out / "shard-0000" / shards.STATUS_FILE).read_text())
    kept = sum(table.num_rows for table, _ in engine.iter_shards(out / "shard-0000"))
    assert status["runs"][0]["new_pairs"] == kept >= 20  # below shard_size=1000: written at the stop
    assert not status["complete"]
    run(_cfg(tmp_path, out, f"n={n}", "n_shards=1", "shard=0"))
    run(_cfg(tmp_path, tmp_path / "whole", f"n={n}", "n_shards=1", "shard=0"))
    assert _pairs(out, 0, n, 1) == _pairs(tmp_path / "whole", 0, n, 1)


def test_merge_names_a_missing_or_partial_shard_and_merges_the_finished_part_on_request(tmp_path, caplog):
    out = tmp_path / "gen"
    for index in (0, 2):
        run(_cfg(tmp_path, out, "n=60", "n_shards=3", f"shard={index}"))
    with pytest.raises(ValueError, match=r"shard 1 is missing \(.*shard-0001 holds no shards\).*allow_partial=true"):
        run(_cfg(tmp_path, out, "n=60", "n_shards=3", "merge=true"))
    run(_cfg(tmp_path, out, "n=30", "n_shards=3", "shard=1"))  # 10 (and the rest of a chunk) of the 20 needed
    with pytest.raises(ValueError, match=r"shard 1 is partial \(1\d of 20 distinct equations in .*shard-0001\)"):
        run(_cfg(tmp_path, out, "n=60", "n_shards=3", "merge=true"))
    with caplog.at_level(logging.WARNING):
        summary = run(_cfg(tmp_path, out, "n=60", "n_shards=3", "merge=true", "allow_partial=true"))
    assert "merging 2 of 3 shards finished (allow_partial=true): shard 1 is partial (1" in caplog.text
    assert summary["shards_complete"] == 2 and summary["unfinished_shards"][0].startswith("shard 1 is partial")
    partial = summary["per_shard"][1]["distinct"]
    assert 10 <= partial < 20 and summary["per_shard"][1]["state"] == "partial"
    assert sum(summary["splits"].values()) == 40 + partial - summary["duplicates_across_shards"]
    assert (out / "summary.json").exists() and (out / "dataset").is_dir()


def test_merge_removes_duplicates_across_shards_and_keeps_test_inputs_out_of_train(tmp_path):
    # three operators at most: a small space, so shards draw some of the same equations
    out, small = tmp_path / "gen", ["data.task.max_ops=3", "data.task.min_ops=1", "n=90", "n_shards=3"]
    for index in range(3):
        run(_cfg(tmp_path, out, *small, f"shard={index}"))
    per_shard = [{s for s, _ in _pairs(out, i, 90, 3)} for i in range(3)]
    every = set().union(*per_shard)
    expected_duplicates = sum(len(s) for s in per_shard) - len(every)
    assert expected_duplicates > 0, "the shards share no equation; this test needs a smaller space"
    summary = run(_cfg(tmp_path, out, *small, "merge=true", "audit=true"))
    assert summary["duplicates_across_shards"] == expected_duplicates
    from datasets import load_from_disk

    data = load_from_disk(str(out / "dataset"))
    sources = {name: list(data[name]["source"]) for name in ("train", "valid", "test")}
    merged = [s for v in sources.values() for s in v]
    assert len(merged) == len(set(merged)) == len(every)  # each equation once, over all splits
    assert not set(sources["train"]) & (set(sources["test"]) | set(sources["valid"]))
    assert summary["heldout_inputs_in_train"] == 0
    assert (
        sum(data["train"]["count"]) + sum(data["valid"]["count"]) + sum(data["test"]["count"])
        == summary["generated_rows"]
    )  # a duplicate's count is added to the kept row
    assert summary["audit"]["verified"] == summary["audit"]["total"] == len(every)
    assert [p["shard"] for p in summary["per_shard"]] == [0, 1, 2] and summary["per_shard"][0]["pairs_per_cpu_hour"]


def test_shard_index_from_the_slurm_array_and_its_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    assert shards.resolve_shard(None, 2) == 1
    assert shards.resolve_shard(0, 2) == 0  # shard= wins
    with pytest.raises(ValueError, match=r"SLURM_ARRAY_TASK_ID=1 is outside 0..0 \(n_shards=1\)"):
        shards.resolve_shard(None, 1)
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    with pytest.raises(ValueError, match=r"shard is unset: pass shard=<0..1>"):
        shards.resolve_shard(None, 2)
    assert [shards.shard_target(10, 3, i) for i in range(3)] == [4, 3, 3]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("n=abc", "symlit-generate: error: n='abc' must be an integer (its default is 10000)"),
        ("shard=x", "symlit-generate: error: shard='x' must be an integer (this array task's index"),
    ],
)
def test_a_bad_number_is_one_line_naming_the_key(tmp_path, override, message):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    cmd = _command(tmp_path / "gen", "n_shards=2", override)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0].startswith(message), proc.stderr
    assert "Traceback" not in proc.stderr
    full = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**env, "HYDRA_FULL_ERROR": "1"})
    assert "Traceback" in full.stderr and "ConfigError" in full.stderr


def test_the_sbatch_template_parses_and_asks_for_requeue():
    template = ROOT / "slurm" / "generate_array.sbatch"
    subprocess.run(["bash", "-n", str(template)], check=True)
    text = template.read_text()
    assert "#SBATCH --requeue" in text and "symlit-generate" in text
    assert "generate_array.sbatch" in (ROOT / "docs" / "generation.md").read_text()


def test_a_shard_being_generated_is_refused_to_a_second_process(tmp_path):
    from symlit.core.atomic import DirectoryLock, DirectoryLocked

    cfg = _cfg(tmp_path, tmp_path / "gen", "n=20", "n_shards=2", "shard=0")
    locked = r"shard-0000 is in use by another symlit-generate run \(pid "
    # an flock, held across processes (and nodes of a shared file system that supports locks)
    with DirectoryLock(tmp_path / "gen" / "shard-0000"), pytest.raises(DirectoryLocked, match=locked):
        run(cfg)


@pytest.mark.needs_extra
def test_the_submitit_launcher_runs_one_cpu_job_per_shard():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="needs the slurm extra")
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            "generate",
            overrides=["hydra/launcher=slurm_cpu", "n_shards=8", "shard=3", "slurm.partition=cpu"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node, launcher.cpus_per_task) == (1, 1, 0, 1)
    assert launcher.partition == "cpu" and launcher.max_num_timeout > 0  # requeued on a time limit
    assert cfg.hydra.sweep.dir == cfg.output_dir


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_with_cpu_time_limits_a_starved_worker_is_not_cut_short(monkeypatch):
    """A nice-19 array task on a busy node may get no CPU for minutes: with SYMLIT_TIME_LIMITS=cpu
    the chunk deadline counts the worker's CPU seconds, so the chunk is not abandoned."""
    import multiprocessing as mp

    from symlit.calculus.generators import GeneratorConfig

    worker = engine._Worker(mp.get_context("spawn"), GeneratorConfig(task="prim_bwd", max_ops=4).to_dict())
    try:
        os.kill(worker.process.pid, signal.SIGSTOP)  # starved: no CPU at all
        worker.start_chunk(0, timeout=0.2)  # SYMLIT_TIME_LIMITS=cpu (the fixture)
        monkeypatch.setenv("SYMLIT_TIME_LIMITS", "wall")
        wall_clocked = engine._Worker.__new__(engine._Worker)
        wall_clocked.process = worker.process
        wall_clocked.start_chunk(0, timeout=0.2)
        time.sleep(0.5)
        assert worker.remaining(0.2) > 0  # 0 CPU seconds used
        assert wall_clocked.remaining(0.2) < 0  # the wall clock would have killed it
    finally:
        worker.stop(kill=True)


def test_a_failed_save_keeps_the_dataset_already_written(tmp_path, monkeypatch):
    from datasets import load_from_disk

    from symlit.data import generate

    def splits(source: str) -> dict[str, list[dict[str, Any]]]:
        row = {"source": source, "target": "x", "n_ops": 1, "count": 1}
        return {"train": [row], "valid": [row], "test": [row]}

    generate.save_dataset(tmp_path, splits("old"))
    real_replace = os.replace

    def full_disk(src, dst):
        if Path(src).name.startswith(".dataset.tmp-"):  # the new dataset's final rename fails
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(generate.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        generate.save_dataset(tmp_path, splits("new"))
    assert load_from_disk(str(tmp_path / "dataset"))["train"]["source"] == ["old"]
    monkeypatch.setattr(generate.os, "replace", real_replace)
    generate.save_dataset(tmp_path, splits("new"))
    assert load_from_disk(str(tmp_path / "dataset"))["train"]["source"] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]  # no temporary or old copy is left
