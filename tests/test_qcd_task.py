"""QCD data: amplitude text and tokens, squared-amplitude token round trip, split keys, the task,
the CLI and the experiment configs."""

from __future__ import annotations

import csv
import re

import pytest
import sympy
from test_qed_task import check_equivalent_forms

from symlit.data.leakage import check_leak_free, leakage_report
from symlit.qcd import generator as gen
from symlit.qcd import symba_text as st
from symlit.qcd.__main__ import main as cli
from symlit.qed.tokens import NOTATIONS, canonical, from_tokens, to_tokens
from symlit.tasks.qcd import QCDGeneratedTask

pytestmark = pytest.mark.xdist_group("test_qcd_task")  # pytest-xdist: the module-scoped fixture is built once

SOME = ["u u~ -> d d~", "u G -> u G", "G G -> tt tt~", "d d~ -> A G", "u u -> u u"]


@pytest.fixture(scope="module")
def rows():
    return gen.generate([gen.Process.parse(p) for p in SOME])


def test_amplitude_text_parses_to_its_process(rows):
    for r in rows:
        node = st.parse(r.amp)
        proc = gen.Process.parse(r.process)
        assert st.legs(node) == list(proc.legs)
        assert st.legs_from_tokens(st.amplitude_tokens(node, "hybrid")) == list(proc.legs)


def test_colour_indices_numbered_by_first_appearance(rows):
    for r in rows:
        for kind in ("COL", "GLU"):
            seen = [int(k) for k in re.findall(rf"{kind}_(\d+)", r.amp)]
            first = list(dict.fromkeys(seen))
            assert first == list(range(len(first))), (kind, r.amp)


def test_amplitude_tokens_do_not_depend_on_index_names(rows):
    """Renaming colour and Lorentz dummies in the text leaves the tokens unchanged."""
    for r in rows:
        shifted = re.sub(r"COL_(\d+)", lambda m: f"COL_{int(m.group(1)) + 7}", r.amp)
        shifted = re.sub(r"GLU_(\d+)", lambda m: f"GLU_{10 - int(m.group(1))}", shifted)
        shifted = re.sub(r"INDEX_(\d+)", lambda m: f"INDEX_{int(m.group(1)) + 40}", shifted)
        assert shifted != r.amp
        for notation in NOTATIONS:
            assert st.amplitude_tokens(st.parse(shifted), notation) == st.amplitude_tokens(st.parse(r.amp), notation)
    # but a different colour structure does change them: T^a_{ij} T^a_{kl} vs T^a_{il} T^a_{kj}
    r = rows[0]
    swapped = r.amp.replace("T_{GLU_0,COL_2,COL_3}", "T_{GLU_0,COL_3,COL_2}")
    assert swapped != r.amp
    assert st.amplitude_tokens(st.parse(swapped)) != st.amplitude_tokens(st.parse(r.amp))


@pytest.mark.parametrize("notation", NOTATIONS)
def test_squared_amplitude_tokens_round_trip(rows, notation):
    for r in rows:
        toks = to_tokens(r.sqamp, notation)
        back = from_tokens(toks, notation)
        assert back == canonical(r.sqamp)
        assert to_tokens(back, notation) == toks
        assert sympy.simplify(back - r.sqamp) == 0


def test_diagram_class_keys():
    def classes(name: str) -> set[str]:
        return {gen.diagram_keys(d)["diagram_class"] for d in gen.diagrams(gen.Process.parse(name))}

    # momentum relabelling and charge conjugation keep the class
    assert classes("u G -> u G") == classes("G u -> G u") == classes("u~ G -> G u~")
    assert classes("u u~ -> G G") == classes("u~ u -> G G")
    # other flavours, or a crossing, are other classes
    assert classes("u G -> u G").isdisjoint(classes("d G -> d G"))
    assert classes("u u~ -> G G").isdisjoint(classes("G G -> u u~"))
    fam = {
        gen.diagram_keys(d)["process_family"]
        for p in ("u d -> u d", "c s -> c s", "s~ c~ -> c~ s~")
        for d in gen.diagrams(gen.Process.parse(p))
    }
    assert len(fam) == 1


def test_task_builds_leak_free_and_verifies(tmp_path):
    path = tmp_path / "qcd.csv"
    assert cli(["--particles", "u", "G", "--orderings", "--out", str(path)]) == 0
    header = next(csv.reader(path.open()))
    assert header[:4] == ["amp", "sqamp", "process", "diagram"]
    task = QCDGeneratedTask(path=str(path), valid_fraction=0.25, test_fraction=0.25)
    splits = task.build()
    n = sum(len(s["source"]) for s in splits.values())
    procs = gen.enumerate_processes(["u", "G"], orderings=True)
    assert n == sum(len(list(gen.diagrams(p))) for p in procs)
    # the same rows generated in-process
    direct = QCDGeneratedTask(particles=["u", "G"], valid_fraction=0.25, test_fraction=0.25).build()
    assert direct == splits
    # no diagram class on two sides: group the CSV rows by class and find each class in one split
    where = {}
    for name, s in splits.items():
        for src in s["source"]:
            where.setdefault(src, set()).add(name)
    with path.open() as f:
        by_class: dict[str, set[str]] = {}
        for row in csv.DictReader(f):
            src = " ".join(st.amplitude_tokens(st.parse(row["amp"]), task.notation))
            by_class.setdefault(row["diagram_class"], set()).update(where[src])
    assert all(len(v) == 1 for v in by_class.values())
    report = leakage_report(task, splits)
    assert report["leak_free_level"] == "diagram_class"
    for name in ("valid", "test"):
        s = report["splits"][name]
        assert s["rows"] == len(splits[name]["source"]) and s["no_key"] == 0
        assert s["same_target"] == s["same_source"] == s["same_key"]["diagram_class"] == 0
    check_leak_free(report, True)
    # verification: the target itself, an equivalent form, and not a wrong one
    src, tgt = splits["train"]["source"][0], splits["train"]["target"][0]
    check_equivalent_forms(task, src, tgt)
    malformed = task.verify(src, tgt, "add(")
    assert malformed.status == "malformed" and task.scores(src, tgt, "add(", malformed)["numeric_equiv"] == 0.0
    assert task.bucket(src, tgt) in {
        "G q -> G q",
        "q q~ -> G G",
        "G G -> q q~",
        "q q -> q q",
        "q q~ -> q q~",
        "q~ q~ -> q~ q~",
        "G q~ -> G q~",
        "G G -> G G",
    }


def test_bad_config_and_file_are_named(tmp_path):
    with pytest.raises(ValueError, match="data.task.split_by"):
        QCDGeneratedTask(split_by="random")
    with pytest.raises(ValueError, match="data.task.particles"):
        QCDGeneratedTask(particles=["u", "Z"])
    with pytest.raises(FileNotFoundError, match="data.task.path"):
        QCDGeneratedTask(path=str(tmp_path / "missing.csv")).build()  # checked when data is built
    bad = tmp_path / "bad.csv"
    bad.write_text("amp,sqamp\nx,y\n")
    with pytest.raises(ValueError, match="missing"):
        QCDGeneratedTask(path=str(bad)).build()


def test_experiments_compose(make_cfg):
    from hydra.utils import instantiate

    for exp in ("qcd_cpu", "qcd"):
        cfg = make_cfg(f"experiment={exp}")
        assert cfg.data.task._target_ == "symlit.tasks.qcd.QCDGeneratedTask"
        task = instantiate(cfg.data.task)
        assert task.split_by == "diagram_class" and task.path.endswith("qcd_2to2_diagrams.csv")
    assert make_cfg("experiment=qcd").model.n_heads == 8


def test_rows_sharing_a_target_stay_together():
    """Two diagram classes can square to the same function (conjugating one quark line of a
    t-channel exchange), so the split groups rows by class *and* target."""
    from symlit.tasks.qcd import _components

    same = {r.sqamp for r in gen.generate([gen.Process.parse("u c -> u c")])} & {
        r.sqamp for r in gen.generate([gen.Process.parse("u c~ -> u c~")])
    }
    assert same  # the physics that makes the target grouping necessary
    rows = [
        {"group": "u c -> u c :: t", "target": "x"},
        {"group": "u c~ -> u c~ :: t", "target": "x"},
        {"group": "u c~ -> u c~ :: t", "target": "y"},
        {"group": "G G -> G G :: c", "target": "z"},
    ]
    comp = _components(rows)
    assert comp[0] == comp[1] == comp[2] != comp[3]


def test_leakage_report_sees_a_row_split_share_diagram_classes(tmp_path):
    """On a random row split the report counts evaluation rows whose diagram class (another
    momentum labelling of the same diagram) is in train, and a leak-free check at that level
    refuses the split, naming it."""
    path = tmp_path / "qcd.csv"
    assert cli(["--particles", "u", "G", "--orderings", "--out", str(path)]) == 0
    task = QCDGeneratedTask(path=str(path), split_by="row", valid_fraction=0.25, test_fraction=0.25)
    report = leakage_report(task, task.build())
    assert report["key_levels"] == ["diagram", "diagram_class", "process", "process_family"]
    assert report["leak_free_level"] is None
    test = report["splits"]["test"]
    assert test["no_key"] == 0 and test["same_key"]["diagram"] == 0  # each labelled diagram is one row
    assert 0 < test["same_key"]["diagram_class"] <= test["same_key"]["process"] <= test["rows"]
    check_leak_free(report, True)  # a row split promises only distinct sources
    with pytest.raises(ValueError, match=r"split '(valid|test)' shares \d+ of \d+ diagram_class keys"):
        check_leak_free(report, "diagram_class")
