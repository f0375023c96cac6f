"""Evaluation: decode a split, verify every hypothesis, and report what a reviewer needs.

The pieces are usable on their own (and by the LightningModule's final test):

* :func:`decode_texts`: greedy and n-best (beam or sampled) hypotheses as text with scores;
* :func:`verify_predictions`: verdicts from the task's verifier in a :class:`VerifierPool`, plus
  *beam agreement* (how many of the top-k hypotheses the verifier accepts when the top-1 hypothesis
  stands in for the reference: a confidence signal that needs no reference answer);
* :func:`summarize` and :func:`render_report`: ``eval.json`` and a Markdown report with greedy and
  beam@k accuracy, accuracy per bucket, accuracy against confidence, timeouts, and the first
  failures.

``symlit-eval ckpt=PATH`` (:func:`main`) loads model, tokenizer and task from a checkpoint written by
``symlit-train`` and runs all of it on one split.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from symlit.atomic import write_text_atomic
from symlit.config import ConfigError, config_dir, quote_paths, run_cli
from symlit.decoding import DecodeConfig, decode, greedy_decode
from symlit.model import DecodingModel, build_for_task
from symlit.tasks.base import Task
from symlit.tokenizer import Seq2SeqTokenizer
from symlit.verifier_pool import Check, VerifierPool

log = logging.getLogger(__name__)

Hypothesis = tuple[str | None, float]
"""Text of a hypothesis (``None`` if it never emitted EOS) and its score."""


@dataclass
class Prediction:
    """Everything evaluated about one input."""

    source: str
    target: str
    bucket: str = "all"
    greedy: str | None = None
    greedy_score: float = 0.0
    greedy_verdict: str = ""
    hypotheses: list[str | None] = field(default_factory=list)  # n-best, best first (empty: greedy only)
    scores: list[float] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)
    agreement: int = 0  # n-best hypotheses accepted with the top-1 hypothesis as the reference
    extra: dict[str, float] = field(default_factory=dict)  # the task's extra scores of the greedy hypothesis

    @property
    def greedy_correct(self) -> bool:
        return self.greedy_verdict == "correct"

    @property
    def top1_correct(self) -> bool:
        return bool(self.verdicts) and self.verdicts[0] == "correct"

    @property
    def any_correct(self) -> bool:
        return "correct" in self.verdicts


# ---------------------------------------------------------------------------- decoding
def _texts(tokenizer: Seq2SeqTokenizer, tokens: torch.Tensor, finished: torch.Tensor) -> list[str | None]:
    texts = tokenizer.decode_batch(tokens.tolist())
    return [t if done else None for t, done in zip(texts, finished.tolist())]


def decode_texts(
    model: DecodingModel, tokenizer: Seq2SeqTokenizer, src: torch.Tensor, config: DecodeConfig, nbest: bool
) -> tuple[list[Hypothesis], list[list[Hypothesis]] | None]:
    """Greedy hypotheses of a batch and, with ``nbest``, the n-best lists ``config`` asks for."""
    greedy = greedy_decode(model, src, tokenizer.bos_id, tokenizer.eos_id, config.max_len, compile=config.compile)
    greedy_out = list(zip(_texts(tokenizer, greedy.tokens, greedy.finished), greedy.scores.tolist()))
    if not nbest:
        return greedy_out, None
    out = decode(model, src, tokenizer.bos_id, tokenizer.eos_id, config)
    lists = []
    for row in range(src.shape[0]):
        texts = _texts(tokenizer, out.tokens[row], out.finished[row])
        lists.append([(t, s) for t, s in zip(texts, out.scores[row].tolist()) if math.isfinite(s)])
    return greedy_out, lists


def wants_nbest(config: DecodeConfig) -> bool:
    """Whether ``config`` asks for more than the greedy hypothesis."""
    return config.strategy == "sample" or (config.strategy == "beam" and config.beam_size > 1)


# ---------------------------------------------------------------------------- verification
def verify_predictions(predictions: list[Prediction], pool: VerifierPool, agreement: bool = True) -> None:
    """Fill in verdicts, extra scores and beam agreement (each distinct check runs once)."""
    checks: dict[tuple[str, str, str | None], Check] = {}

    def want(source: str, target: str, hyp: str | None, with_scores: bool = False) -> tuple:
        key = (source, target, hyp)
        check = checks.setdefault(key, Check(source, target, hyp))
        check.with_scores |= with_scores
        return key

    plan = []
    for p in predictions:
        g = want(p.source, p.target, p.greedy, with_scores=True)
        nb = [want(p.source, p.target, h) for h in p.hypotheses]
        top = p.hypotheses[0] if p.hypotheses else None
        ag = [want(p.source, top, h) for h in p.hypotheses[1:]] if agreement and top is not None else []
        plan.append((g, nb, ag))
    keys = list(checks)
    outcomes = dict(zip(keys, pool.verify([checks[k] for k in keys])))
    for p, (g, nb, ag) in zip(predictions, plan):
        p.greedy_verdict = outcomes[g].verdict
        p.extra = outcomes[g].scores
        p.verdicts = [outcomes[k].verdict for k in nb]
        p.agreement = (1 if p.hypotheses and p.hypotheses[0] is not None else 0) + sum(
            outcomes[k].verdict == "correct" for k in ag
        )


# ---------------------------------------------------------------------------- summaries
def _rate(hits: int, n: int) -> float:
    return hits / n if n else 0.0


def _confidence_tables(preds: list[Prediction], use_nbest: bool, bins: int = 5) -> dict[str, Any]:
    """Accuracy of the top hypothesis against its score (quantile bins), coverage and agreement."""
    rows = [
        (
            p.scores[0] if use_nbest and p.scores else p.greedy_score,
            p.top1_correct if use_nbest else p.greedy_correct,
            p,
        )
        for p in preds
    ]
    rows.sort(key=lambda r: -r[0])
    by_score = []
    for b in range(bins):
        chunk = rows[b * len(rows) // bins : (b + 1) * len(rows) // bins]
        if chunk:
            by_score.append(
                {
                    "score_max": chunk[0][0],
                    "score_min": chunk[-1][0],
                    "n": len(chunk),
                    "accuracy": _rate(sum(r[1] for r in chunk), len(chunk)),
                }
            )
    coverage = []
    for fraction in (0.1, 0.25, 0.5, 0.75, 0.9, 1.0):
        top = rows[: max(1, round(fraction * len(rows)))] if rows else []
        coverage.append({"coverage": fraction, "n": len(top), "accuracy": _rate(sum(r[1] for r in top), len(top))})
    by_agreement = []
    if use_nbest:
        groups: dict[int, list[bool]] = defaultdict(list)
        for _, ok, p in rows:
            groups[p.agreement].append(ok)
        by_agreement = [
            {"agreement": a, "n": len(v), "accuracy": _rate(sum(v), len(v))} for a, v in sorted(groups.items())
        ]
    return {"by_score": by_score, "coverage": coverage, "by_agreement": by_agreement}


def summarize(preds: list[Prediction], config: DecodeConfig) -> dict[str, Any]:
    """The metrics of ``eval.json``."""
    n = len(preds)
    use_nbest = any(p.hypotheses or p.verdicts for p in preds) and wants_nbest(config)
    k = config.num_samples if config.strategy == "sample" else config.beam_size
    greedy_verdicts = Counter(p.greedy_verdict for p in preds)
    summary: dict[str, Any] = {
        "n": n,
        "greedy": {"accuracy": _rate(greedy_verdicts["correct"], n), "verdicts": dict(greedy_verdicts)},
    }
    nbest_verdicts: Counter = Counter(v for p in preds for v in p.verdicts)
    if use_nbest:
        summary["nbest"] = {
            "strategy": config.strategy,
            "k": k,
            "top1_accuracy": _rate(sum(p.top1_correct for p in preds), n),
            f"accuracy_at_{k}": _rate(sum(p.any_correct for p in preds), n),
            "verdicts": dict(nbest_verdicts),
        }
    summary["timeouts"] = greedy_verdicts["timeout"] + nbest_verdicts["timeout"]
    buckets: dict[str, list[Prediction]] = defaultdict(list)
    for p in preds:
        buckets[p.bucket].append(p)
    summary["by_bucket"] = {
        name: {
            "n": len(group),
            "greedy": _rate(sum(p.greedy_correct for p in group), len(group)),
            **(
                {
                    "top1": _rate(sum(p.top1_correct for p in group), len(group)),
                    f"at_{k}": _rate(sum(p.any_correct for p in group), len(group)),
                }
                if use_nbest
                else {}
            ),
        }
        for name, group in sorted(buckets.items(), key=lambda kv: _bucket_order(kv[0]))
    }
    summary["confidence"] = _confidence_tables(preds, use_nbest)
    extra_names = sorted({name for p in preds for name in p.extra})
    if extra_names:
        summary["scores"] = {name: sum(p.extra.get(name, 0.0) for p in preds) / n for name in extra_names}
    return summary


def _bucket_order(name: str) -> tuple:
    """Natural order: ``digits=2`` before ``digits=10``."""
    head, _, tail = name.rpartition("=")
    return (head, int(tail), "") if tail.lstrip("-").isdigit() else (name, 0, name)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}" if v == 0 or 1e-3 <= abs(v) < 1e4 else f"{v:.3g}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_report(summary: dict[str, Any], preds: list[Prediction], meta: dict[str, Any], n_failures: int = 20) -> str:
    """The Markdown report of an evaluation."""
    nb = summary.get("nbest")
    out = [f"# Evaluation of `{meta['checkpoint']}`", ""]
    out += [
        f"- split: `{meta['split']}` ({summary['n']} inputs), task `{meta['task']}`",
        f"- decoding: {meta['decode']}",
        f"- verifier: {meta['verify']}",
        f"- timeouts: {summary['timeouts']}",
        "",
    ]
    out += ["## Accuracy", ""]
    rows = [["greedy", summary["greedy"]["accuracy"], json.dumps(summary["greedy"]["verdicts"])]]
    if nb:
        k = nb["k"]
        rows += [
            [f"{nb['strategy']} top-1", nb["top1_accuracy"], ""],
            [f"{nb['strategy']}@{k} (any of top {k})", nb[f"accuracy_at_{k}"], json.dumps(nb["verdicts"])],
        ]
    out += [_table(["decoding", "accuracy", "verdicts"], rows), ""]
    if summary.get("scores"):
        out += ["Task scores (greedy): " + ", ".join(f"{k} = {v:.4f}" for k, v in summary["scores"].items()), ""]
    out += ["## By bucket", ""]
    cols = list(next(iter(summary["by_bucket"].values()), {}).keys())
    out += [_table(["bucket", *cols], [[name, *(v[c] for c in cols)] for name, v in summary["by_bucket"].items()]), ""]
    conf = summary["confidence"]
    which = "top-1 hypothesis" if nb else "greedy hypothesis"
    out += [
        "## Confidence",
        "",
        f"Accuracy of the {which} by its score (sum of log-probabilities; "
        "length-normalised for beam search), most confident first:",
        "",
    ]
    out += [
        _table(
            ["score from", "score to", "n", "accuracy"],
            [[r["score_max"], r["score_min"], r["n"], r["accuracy"]] for r in conf["by_score"]],
        ),
        "",
    ]
    out += ["Keeping only the most confident predictions:", ""]
    out += [
        _table(["coverage", "n", "accuracy"], [[r["coverage"], r["n"], r["accuracy"]] for r in conf["coverage"]]),
        "",
    ]
    if conf["by_agreement"]:
        out += [
            "Beam agreement: how many of the top-k hypotheses the verifier accepts with the top-1 as reference "
            "(needs no reference answer):",
            "",
        ]
        out += [
            _table(
                ["agreement", "n", "accuracy"], [[r["agreement"], r["n"], r["accuracy"]] for r in conf["by_agreement"]]
            ),
            "",
        ]
    failures = [p for p in preds if not (p.top1_correct if nb else p.greedy_correct)][:n_failures]
    out += [f"## First {len(failures)} failures", ""]
    for p in failures:
        out += [
            f"- **input** `{p.source}`",
            f"  - target `{p.target}`",
            f"  - greedy `{p.greedy}` ({p.greedy_verdict}, {p.greedy_score:.3f})",
        ]
        for h, s, v in list(zip(p.hypotheses, p.scores, p.verdicts))[:3]:
            out.append(f"  - hypothesis `{h}` ({v}, {s:.3f})")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- checkpoints
@dataclass
class LoadedCheckpoint:
    model: DecodingModel
    tokenizer: Seq2SeqTokenizer
    task: Task
    hparams: dict[str, Any]


def load_checkpoint(path: str | Path, tokenizer_path: str | None = None, device: str = "cpu") -> LoadedCheckpoint:
    """Model, tokenizer and task from a ``symlit-train`` checkpoint, with errors that say what to fix.

    The model class is the one the checkpoint's ``model._target_`` names (checkpoints written before
    the model group named a class hold ``symlit.model.TransformerConfig``: the encoder-decoder).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"ckpt={path}: no such file; pass a checkpoint written by symlit-train, "
            "e.g. ckpt=outputs/<name>/<run>/checkpoints/best.ckpt"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"ckpt={path} is not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from err
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not hp or not all(key in hp for key in ("model", "tokenizer_json", "task")):
        raise ValueError(
            f"ckpt={path} has no symlit hyper-parameters (model, tokenizer_json, task); was it written by symlit-train?"
        )
    tokenizer = Seq2SeqTokenizer.from_json(hp["tokenizer_json"])
    if tokenizer_path is not None:
        given = Seq2SeqTokenizer.from_file(tokenizer_path)
        if given.fingerprint() != tokenizer.fingerprint():
            theirs, ours = given.hf.get_vocab(), tokenizer.hf.get_vocab()
            differ = sorted(set(theirs.items()) ^ set(ours.items()))[:5]
            raise ValueError(
                f"tokenizer={tokenizer_path} does not match the tokenizer of ckpt={path} "
                f"({len(theirs)} vs {len(ours)} tokens; differing (token, id) pairs include {differ}). "
                "Evaluate with the run's own tokenizer.json, or leave tokenizer unset to use the checkpoint's."
            )
    task = instantiate(hp["task"], _convert_="all")
    model = build_for_task(hp["model"], tokenizer, task)
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    rows = state.get("embed.weight")
    if rows is not None and rows.shape[0] != len(tokenizer):
        raise ValueError(
            f"ckpt={path}: the model has {rows.shape[0]} embeddings but its tokenizer "
            f"{len(tokenizer)} tokens; the checkpoint is inconsistent"
        )
    model.load_state_dict(state)
    return LoadedCheckpoint(model.to(device).eval(), tokenizer, task, dict(hp))


# ---------------------------------------------------------------------------- a whole split
def evaluate_split(
    loaded: LoadedCheckpoint,
    sources: list[str],
    targets: list[str],
    config: DecodeConfig,
    pool: VerifierPool,
    batch_size: int = 256,
    device: str = "cpu",
) -> list[Prediction]:
    """Decode and verify every input; batches are formed by source length (less padding)."""
    tok, task = loaded.tokenizer, loaded.task
    ids = tok.encode_batch(sources)
    order = sorted(range(len(sources)), key=lambda i: len(ids[i]))
    preds: list[Prediction | None] = [None] * len(sources)
    nbest = wants_nbest(config)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(ids[i]) for i in chunk)
        src = torch.full((len(chunk), width), tok.pad_id, dtype=torch.long)
        for row, i in enumerate(chunk):
            src[row, : len(ids[i])] = torch.tensor(ids[i])
        greedy, lists = decode_texts(loaded.model, tok, src.to(device), config, nbest)
        for row, i in enumerate(chunk):
            p = Prediction(sources[i], targets[i], bucket=task.bucket(sources[i], targets[i]))
            p.greedy, p.greedy_score = greedy[row]
            if lists is not None:
                p.hypotheses = [h for h, _ in lists[row]]
                p.scores = [s for _, s in lists[row]]
            preds[i] = p
        log.info("decoded %d / %d", min(start + batch_size, len(order)), len(order))
    done = [p for p in preds if p is not None]
    verify_predictions(done, pool)
    return done


def run_eval(cfg: DictConfig) -> dict[str, Any]:
    """``symlit-eval``: evaluate ``cfg.ckpt`` on ``cfg.split``; writes ``eval.json`` and ``report.md``."""
    if cfg.limit is not None and (isinstance(cfg.limit, bool) or not isinstance(cfg.limit, int) or cfg.limit < 1):
        raise ConfigError(f"limit={cfg.limit!r} must be a positive number of inputs, or null for the whole split")
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_checkpoint(cfg.ckpt, cfg.get("tokenizer"), device)
    if cfg.get("data") is not None:  # evaluate on other data: data=<group> replaces the checkpoint's task
        loaded.task = instantiate(cfg.data.task, _convert_="all")
    from symlit.data import load_or_build  # heavy (datasets); imported when needed

    dataset = load_or_build(loaded.task, cfg.paths.data_dir)
    if cfg.split not in dataset:
        raise KeyError(f"split={cfg.split!r} is not a split of task {loaded.task.name}; available: {sorted(dataset)}")
    split = dataset[cfg.split]
    if cfg.limit is not None:
        split = split.select(range(min(cfg.limit, split.num_rows)))
    sources, targets = list(split["source"]), list(split["target"])
    unknown = sum(loaded.tokenizer.unk_id in ids for ids in loaded.tokenizer.encode_batch(sources))
    if unknown:
        log.warning("%d of %d sources contain tokens unknown to the checkpoint's tokenizer", unknown, len(sources))
    config = DecodeConfig(**OmegaConf.to_container(cfg.decode, resolve=True))
    if config.max_len is None:
        longest = max((len(t) for t in loaded.tokenizer.encode_batch(targets)), default=1)
        config.max_len = min(2 * longest + 8, loaded.model.cfg.max_positions)

    with VerifierPool(loaded.task, cfg.verify.workers, cfg.verify.timeout) as pool:
        preds = evaluate_split(loaded, sources, targets, config, pool, cfg.batch_size, device)
    summary = summarize(preds, config)
    summary["unknown_token_sources"] = unknown
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "checkpoint": str(cfg.ckpt),
        "split": cfg.split,
        "task": loaded.task.name,
        "decode": asdict(config),
        "verify": OmegaConf.to_container(cfg.verify),
    }
    write_text_atomic(out_dir / "eval.json", json.dumps({**meta, "metrics": summary}, indent=1, default=str))
    write_text_atomic(out_dir / "report.md", render_report(summary, preds, meta))
    with (out_dir / "predictions.jsonl.tmp").open("w") as f:
        for p in preds:
            f.write(json.dumps(asdict(p)) + "\n")
    os.replace(out_dir / "predictions.jsonl.tmp", out_dir / "predictions.jsonl")
    from symlit import dashboard
    from symlit.plots import eval_figures

    images = eval_figures(out_dir)  # accuracy_by_bucket.png, reliability.png
    run_dir = Path(cfg.ckpt).parent.parent if Path(cfg.ckpt).parent.name == "checkpoints" else Path(cfg.ckpt).parent
    enabled = cfg.logger.get("enabled")
    if enabled == "auto":  # log when the checkpoint's training run has a W&B run
        enabled = dashboard.training_run(run_dir) is not None
    if enabled:
        run_id = dashboard.log_eval(cfg, loaded.task, run_dir, out_dir, summary, preds, images)
        print(f"W&B run {run_id}: {dashboard.eval_key(cfg)}/...")
    line = f"greedy {summary['greedy']['accuracy']:.4f}"
    if nb := summary.get("nbest"):
        k = nb["k"]
        line += f" | {nb['strategy']} top-1 {nb['top1_accuracy']:.4f} | @{k} {nb[f'accuracy_at_{k}']:.4f}"
    print(
        f"{cfg.split}: {summary['n']} inputs | {line} | timeouts {summary['timeouts']}\nreport: {out_dir / 'report.md'}"
    )
    return summary


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    os.environ.setdefault("WANDB_SILENT", "true")
    run_cli("symlit-eval", run_eval, cfg)


def main() -> None:
    """Console entry point ``symlit-eval``: accepts the checkpoint paths ``symlit-train`` prints, unquoted."""
    args = sys.argv[1:]
    if not any(a.lstrip("+").startswith("ckpt=") for a in args) and not {"-h", "--help", "--hydra-help"} & set(args):
        print(
            "symlit-eval: error: ckpt is missing; pass the checkpoint to evaluate, "
            "e.g. symlit-eval ckpt=outputs/<name>/<run>/checkpoints/best.ckpt",
            file=sys.stderr,
        )
        raise SystemExit(2)
    sys.argv[1:] = quote_paths(args)
    _hydra_main()


if __name__ == "__main__":
    main()
