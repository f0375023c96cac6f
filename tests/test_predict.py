"""``symlit-predict`` in a terminal, one-shot, from Python and from the example notebook."""

from __future__ import annotations

import json
import math
import re
import sys

import pexpect
import pytest
from review_sweep import REPO, run_python, sweep_env

from symlit.review.predict import Predictor

pytestmark = pytest.mark.xdist_group("review_sweep")  # pytest-xdist: the session-scoped sweep is built once


ROW = re.compile(r"^\s*(\d+)  (.+?)\s+(-?\d+\.\d{3})  (correct|wrong|error|timeout|no_eos)$")


def _expected_rows(block: str, reference: str, beams: int) -> None:
    """Every answer row: rank, expression, score, and the verdict the reference implies."""
    rows = [m.groups() for line in block.splitlines() if (m := ROW.match(line.rstrip("\r")))]
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1)) and 1 <= len(rows) <= beams, block
    # beam search lists finished hypotheses first, each group by score (symlit.evaluation.decoding.beam_search)
    ended = [r[3] != "no_eos" for r in rows]
    assert ended == sorted(ended, reverse=True), block
    for group in (True, False):
        scores = [float(r[2]) for r, e in zip(rows, ended) if e == group]
        assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores), block
    for (_, answer, _, verdict), e in zip(rows, ended):
        assert not e or (verdict == "correct") == (answer == reference), block
        assert verdict in ("correct", "wrong", "malformed", "no_eos"), block


def test_predict_in_a_terminal(ckpt, tmp_path):
    child = pexpect.spawn(
        sys.executable,
        ["-m", "symlit.review.predict", f"ckpt={ckpt}", "decode.beam_size=3"],
        cwd=str(tmp_path),
        env=sweep_env(tmp_path),
        encoding="utf-8",
        timeout=120,
    )
    child.expect_exact("ArithmeticTask: type an input")
    child.expect_exact("symlit> ")
    for text, shown, value in [("23 + 15", "23 + 15", "38"), ("7+45", "7 + 45", "52"), ("  99 + 1", "99 + 1", "100")]:
        child.sendline(text)
        child.expect_exact("symlit> ")
        block = child.before
        assert f"input: {shown}\r\ntokens: " in block and f"reference: {value}\r\n" in block
        assert re.search(r"beam agreement: [1-3] of [1-3] ", block)
        _expected_rows(block, value, 3)
    for bad, message in [
        ("23 +", "error: '23 +' ends with an operator; expected a number after it"),
        ("twelve + 3", "error: unexpected 't' in 'twelve + 3'; expected a whole number"),
    ]:
        child.sendline(bad)
        child.expect_exact("symlit> ")
        assert message in child.before and "Traceback" not in child.before
    child.sendline("quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_predict_one_shot_and_from_python(ckpt, tmp_path):
    proc = run_python(tmp_path, "-m", "symlit.review.predict", f"ckpt={ckpt}", "input=23 + 15", "decode.beam_size=2")
    assert "input: 23 + 15" in proc.stdout and "reference: 38" in proc.stdout
    _expected_rows(proc.stdout, "38", 2)
    bad = run_python(tmp_path, "-m", "symlit.review.predict", f"ckpt={ckpt}", "input=23 ++", check=False)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "symlit-predict: error: input='23 ++': '23 ++' ends with an operator; expected a number after it"
    )
    missing = run_python(
        tmp_path, "-m", "symlit.review.predict", f"ckpt={tmp_path / 'no.ckpt'}", "input=1 + 1", check=False
    )
    assert missing.returncode == 2 and missing.stderr.strip().startswith("symlit-predict: error: ckpt=")
    predictor = Predictor.from_checkpoint(str(ckpt), beam_size=3)
    result = predictor("23 + 15")
    assert result.reference == "38" and len(result.answers) == 3
    assert [a.verdict == "correct" for a in result.answers] == [a.text == "38" for a in result.answers]
    # finished hypotheses first (tokens not None), each group by score
    ended = [a.tokens is not None for a in result.answers]
    assert ended == sorted(ended, reverse=True)
    for group in (True, False):
        scores = [a.score for a, e in zip(result.answers, ended) if e == group]
        assert scores == sorted(scores, reverse=True)
    assert 1 <= result.agreement <= 3


def test_notebook_runs(ckpt, tmp_path, monkeypatch):
    notebook = json.loads((REPO / "examples" / "predict.ipynb").read_text())
    assert notebook["nbformat"] == 4
    code = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    monkeypatch.setenv("SYMLIT_CKPT", str(ckpt))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "predict.ipynb", "exec"), scope)
    assert scope["result"].reference == "38" and math.isfinite(scope["result"].answers[0].score)


def test_free_text_input_survives_hydra_parsing():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from symlit.core.cli import quote_free_text
    from symlit.qed import symba_format as sf

    amplitude = sf.read_symba_file(str(REPO / "data_samples/symba-qed-2to2/valid.csv"))[0][0]
    for text in ["23 + 15", "x*cos(x) + sin(x)", "a, b", "it's", amplitude, "end\\"]:
        (override,) = OverridesParser.create().parse_overrides(quote_free_text([f"input={text}"]))
        assert override.value() == text
    sweep_job = "/o/addition/data.task.n_test=40,optim.optimizer.lr=0.002/checkpoints/best.ckpt"
    (override,) = OverridesParser.create().parse_overrides(quote_free_text([f"ckpt={sweep_job}"]))
    assert override.value() == sweep_job
