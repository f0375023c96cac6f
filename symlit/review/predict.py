"""``symlit-predict ckpt=PATH``: ask a trained model, interactively or once, and check its answers.

The input is read by the checkpoint's task (``"23 + 15"`` for arithmetic, ``"x*cos(x)"`` for
integration, a SYMBA amplitude for QED), decoded with beam search, and every hypothesis is
verified by the task; the answers are printed best first as expressions with their score,
verdict and the beam agreement::

    symlit-predict ckpt=outputs/addition/default/checkpoints/best.ckpt              # prompt loop
    symlit-predict ckpt=outputs/addition/default/checkpoints/best.ckpt input="23 + 15"
    symlit-predict ckpt=... decode.beam_size=10 verify.workers=1                     # 10 beams, verified with a time limit

From Python: ``Predictor.from_checkpoint(path)("23 + 15")`` (see ``examples/predict.ipynb``).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import torch
from omegaconf import DictConfig, OmegaConf

from symlit.core.cli import console_command, fail
from symlit.evaluation.decoding import DecodeConfig, decode
from symlit.evaluation.scoring import Prediction, verify_predictions
from symlit.evaluation.verifier_pool import VerifierPool
from symlit.models.checkpoint import LoadedCheckpoint, load_checkpoint

PROMPT = "symlit> "
UNVERIFIED = "unverified"


@dataclass
class Answer:
    """One hypothesis: its tokens (``None`` without EOS), readable text, score and verdict."""

    tokens: str | None
    text: str
    score: float
    verdict: str


@dataclass
class Result:
    """The answers to one input, best first, with the beam agreement of the top answer."""

    input: str
    source: str
    rendered: str
    reference: str | None
    answers: list[Answer] = field(default_factory=list)
    agreement: int = 0

    def format(self) -> str:
        """The printed form: input, tokens, a ranked table of answers, the beam agreement."""
        lines = [f"input: {self.rendered}", f"tokens: {self.source}"]
        if self.reference:
            lines.append(f"reference: {self.reference}")
        width = max([len("answer"), *(len(a.text) for a in self.answers)])
        lines.append(f"  #  {'answer':<{width}}  {'score':>8}  verdict")
        for rank, a in enumerate(self.answers, start=1):
            lines.append(f"{rank:>3}  {a.text:<{width}}  {a.score:>8.3f}  {a.verdict}")
        lines.append(
            f"beam agreement: {self.agreement} of {len(self.answers)} "
            "(answers the verifier accepts with answer 1 as the reference)"
        )
        return "\n".join(lines)


class Predictor:
    """Decode and verify single inputs with a loaded checkpoint (usable from Python)."""

    def __init__(self, loaded: LoadedCheckpoint, config: DecodeConfig, pool: VerifierPool, device: str = "cpu") -> None:
        self.loaded, self.config, self.pool, self.device = loaded, config, pool, device

    @classmethod
    def from_checkpoint(
        cls,
        ckpt: str,
        beam_size: int = 5,
        device: str = "cpu",
        workers: int = 0,
        timeout: float = 10.0,
        **decode: object,
    ) -> Predictor:
        """A predictor for ``ckpt``: beam search with ``beam_size`` beams, verification in
        ``workers`` processes (0: in this process) with ``timeout`` seconds per hypothesis."""
        loaded = load_checkpoint(ckpt, device=device)
        config = DecodeConfig(**{"strategy": "beam", "beam_size": beam_size, **decode})
        return cls(loaded, config, VerifierPool(loaded.task, workers, timeout), device)

    def __call__(self, text: str) -> Result:
        """The ranked, verified answers to ``text``; ``ValueError`` with a message for a bad input."""
        task, tok, model = self.loaded.task, self.loaded.tokenizer, self.loaded.model
        source = task.parse_input(text)
        ids = tok.encode(source)
        unknown = sorted({t for t, i in zip(tok.tokens(source), ids) if i == tok.unk_id})
        if unknown:
            raise ValueError(f"{', '.join(unknown)} not in this model's vocabulary (it never saw them in training)")
        limit = model.cfg.max_positions
        if len(ids) > limit:
            raise ValueError(f"the input has {len(ids)} tokens; this model reads at most {limit}")
        config = DecodeConfig(
            **{**self.config.__dict__, "max_len": self.config.max_len or min(limit, 4 * len(ids) + 16)}
        )
        src = torch.tensor([ids], device=self.device)  # (1, S)
        out = decode(model, src, tok.bos_id, tok.eos_id, config)  # tokens (1, N, L), scores (1, N)
        texts = tok.decode_batch(out.tokens[0].tolist())
        hyps = [
            (t if done else None, s)
            for t, done, s in zip(texts, out.finished[0].tolist(), out.scores[0].tolist())
            if math.isfinite(s)
        ]
        reference = task.reference(source)
        if not hyps:
            return Result(text.strip(), source, task.render(source), None)
        pred = Prediction(
            source,
            reference if reference is not None else (hyps[0][0] or ""),
            hypotheses=[h for h, _ in hyps],
            scores=[s for _, s in hyps],
        )
        verify_predictions([pred], self.pool)
        verdicts = pred.verdicts if reference is not None else [UNVERIFIED] * len(hyps)
        answers = [Answer(h, task.show(h), s, v) for (h, s), v in zip(hyps, verdicts)]
        shown_reference = task.render(reference) if reference else None
        return Result(text.strip(), source, task.render(source), shown_reference, answers, pred.agreement)

    def close(self) -> None:
        self.pool.close()


def repl(predictor: Predictor, stdin=sys.stdin, stdout=sys.stdout) -> None:
    """Prompt, answer, repeat; ``quit``, ``exit`` or end of input (Ctrl-D) leaves."""
    task = predictor.loaded.task
    print(
        f"{task.name}: type an input (e.g. {task.example_input()}); quit or Ctrl-D to leave.", file=stdout, flush=True
    )
    while True:
        print(PROMPT, end="", file=stdout, flush=True)
        line = stdin.readline()
        if not line or line.strip() in ("quit", "exit"):
            print(file=stdout, flush=True)
            return
        if not line.strip():
            continue
        try:
            print(predictor(line).format(), file=stdout, flush=True)
        except ValueError as err:
            print(f"error: {err}", file=stdout, flush=True)


def run_predict(cfg: DictConfig) -> Result | None:
    """``symlit-predict``: one input (``cfg.input``) or the prompt loop."""
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    decode_cfg = OmegaConf.to_container(cfg.decode, resolve=True)
    try:
        predictor = Predictor.from_checkpoint(
            cfg.ckpt, device=device, workers=cfg.verify.workers, timeout=cfg.verify.timeout, **decode_cfg
        )
    except (FileNotFoundError, ValueError) as err:  # a bad ckpt or decode value: one line, no traceback
        fail("symlit-predict", str(err))
    try:
        if cfg.input is None:
            repl(predictor)
            return None
        try:
            result = predictor(str(cfg.input))
        except ValueError as err:
            fail("symlit-predict", f"input={cfg.input!r}: {err}")
        print(result.format())
        return result
    finally:
        predictor.close()


main = console_command("symlit-predict", "predict", run_predict, free_text=True)


if __name__ == "__main__":
    main()
