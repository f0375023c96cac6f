"""The front of every Hydra command (``symlit-train``, ``-eval``, ``-predict``, ``-inspect``, ``-generate``).

:func:`hydra_command` checks the command line against the composed config before the command
imports torch or builds anything, so the common mistakes end in one line that names the key and
the fix, with exit status 2 and no traceback (``HYDRA_FULL_ERROR=1`` shows Hydra's own trace):

* a key that does not exist (``trainer.max_epoch=3``: "did you mean trainer.max_epochs?");
* an unknown option of a config group (``experiment=nope``: the valid ones are listed);
* a value of the wrong type (``model.d_model=abc``: the key's default says which type);
* a required key left out (``ckpt``);
* a Hydra plugin config without its extra (``hydra/launcher=slurm``: ``pip install 'symlit[slurm]'``).

Errors found later, while the command runs (a checkpoint that does not exist, a bad data file),
are reported the same way by :func:`symlit.core.config.run_cli`. :func:`console_command` builds a
command's console entry point from its name, its config and the function that runs it.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from omegaconf import DictConfig, ListConfig, OmegaConf

from symlit.core.config import config_dir

HELP_FLAGS = {"-h", "--help", "--hydra-help"}
# flags of Hydra's command line that take no key=value check
INFO_FLAGS = {"--cfg", "-c", "--info", "-i", "--resolve", "--package", "-p", "--shell-completion", "-sc"}
MULTIRUN_FLAGS = {"-m", "--multirun"}

# keys whose value may legitimately change type (Lightning accepts several)
UNION_KEYS = {"trainer.devices", "trainer.precision", "trainer.strategy", "trainer.accelerator"}

# Hydra plugin configs and the extra that installs them
PLUGIN_EXTRAS = {
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "optuna": ("hydra_plugins.hydra_optuna_sweeper", "sweep"),
}

# how each command's required keys are given, for the error that names them
REQUIRED_EXAMPLES = {"ckpt": "ckpt=outputs/<name>/<run>/checkpoints/best.ckpt"}


class CommandLineError(ValueError):
    """A command line that cannot work; the message names the key and the fix."""


def fail(program: str, message: str) -> NoReturn:
    """End ``program`` with ``program: error: message`` on stderr and exit status 2 (a user error)."""
    print(f"{program}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def hydra_command(program: str, config_name: str, hydra_main: Callable[[], Any], argv: Sequence[str]) -> Any:
    """Check ``argv`` (:func:`check_command_line`), then run ``hydra_main`` (a ``@hydra.main`` function)."""
    if not HELP_FLAGS & set(argv) and os.environ.get("HYDRA_FULL_ERROR") != "1":
        try:
            check_command_line(config_name, argv)
        except CommandLineError as err:
            fail(program, str(err))
    return hydra_main()


FREE_TEXT_KEYS = ("input", "ckpt", "output_dir")


def quote_free_text(argv: list[str], keys: tuple[str, ...] = FREE_TEXT_KEYS) -> list[str]:
    """``input=x*cos(x)`` -> ``input='x*cos(x)'``: inputs and paths are free text, not Hydra override
    syntax (a sweep's run directory holds ``=`` and ``,``; an input holds parentheses)."""
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key in keys and not value.startswith(("'", '"')) and value != "null":
            # Hydra quoted strings: backslashes are literal except before a quote or at the end
            value = re.sub(r"(\\+)(?='|$)", lambda m: 2 * m.group(1), value)
            arg = f"{key}='" + value.replace("'", "\\'") + "'"
        out.append(arg)
    return out


def free_text_command(program: str, config_name: str, hydra_main: Callable[[], Any]) -> Any:
    """:func:`hydra_command` for a command whose ``input``, ``ckpt`` and ``output_dir`` are free text
    (:func:`quote_free_text`), W&B quiet: ``symlit-predict`` and ``symlit-inspect``."""
    os.environ.setdefault("WANDB_SILENT", "true")
    sys.argv = [sys.argv[0], *quote_free_text(sys.argv[1:])]
    return hydra_command(program, config_name, hydra_main, sys.argv[1:])


def console_command(
    program: str, config_name: str, run: Callable[[DictConfig], Any], *, free_text: bool = False
) -> Callable[[], None]:
    """The console entry point of a Hydra command: a function of no arguments that reads ``sys.argv``.

    It checks the command line (:func:`hydra_command`, or :func:`free_text_command` with
    ``free_text``), then lets ``@hydra.main`` compose ``conf/<config_name>.yaml`` with the overrides
    and call ``run(cfg)`` once per job (``--help``, ``--cfg``, ``-m`` and overrides are Hydra's).
    ``run``'s return value is not used. Hydra names the job (``hydra.job.name``) after the module
    that defines ``run``.
    """
    import hydra

    @functools.wraps(run)  # Hydra reads the job's name from the wrapped function's module
    def task(cfg: DictConfig) -> None:
        run(cfg)

    hydra_main = hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=config_name)(task)

    def main() -> None:
        if free_text:
            free_text_command(program, config_name, hydra_main)
        else:
            hydra_command(program, config_name, hydra_main, sys.argv[1:])

    main.__doc__ = f"Console entry point ``{program}``."
    return main


def check_command_line(config_name: str, argv: Sequence[str], check_files: bool = True) -> DictConfig | None:
    """Compose ``config_name`` with the overrides in ``argv`` as Hydra will, and raise
    :class:`CommandLineError` for the mistakes listed in the module docstring.

    Returns the composed config (``None`` when ``argv`` only asks Hydra for information). In a
    multirun every value of a sweep is type-checked. ``check_files``: a ``ckpt`` must exist.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException

    if INFO_FLAGS & set(argv):
        return None
    # a hyper-parameter search (hparams_search=...) sets hydra.mode=MULTIRUN itself
    multirun = bool(MULTIRUN_FLAGS & set(argv)) or any(
        a.startswith("hparams_search=") and a != "hparams_search=null" for a in argv
    )
    texts = [a for a in argv if not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(texts)
    except OverrideParseException as err:
        raise CommandLineError(f"cannot read the command line: {_first_line(err)}") from None
    overrides, swept = [], {}
    for text, override in zip(texts, parsed):
        if override.is_sweep_override():
            if not multirun:
                raise CommandLineError(f"{text} is a sweep: add -m (symlit-train -m {text})")
            values = list(override.sweep_string_iterator()) if _is_listable(override) else []
            if not values:
                continue
            text = f"{override.get_key_element()}={values[0]}"
            swept[override.get_key_element()] = [v for v in override.sweep_iterator()]
        overrides.append(text)

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            try:
                cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
            except MissingConfigException as err:
                raise CommandLineError(_unknown_option(err, overrides)) from None
            except HydraException as err:
                raise CommandLineError(_bad_key(err, config_name, overrides, compose)) from None
            defaults = compose(config_name, overrides=[o for o in overrides if _is_group_choice(o)])
    finally:
        GlobalHydra.instance().clear()
    _check_types(cfg, defaults, overrides, swept)
    _check_required(cfg, check_files)
    return cfg


def _first_line(err: BaseException) -> str:
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)


def _is_listable(override: Any) -> bool:
    from hydra.core.override_parser.types import ChoiceSweep, RangeSweep

    return isinstance(override.value(), (ChoiceSweep, RangeSweep))


def _group_options(group: str) -> list[str]:
    folder = config_dir() / group
    return sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("_")) if folder.is_dir() else []


def _is_group_choice(override: str) -> bool:
    key = override.lstrip("~+").partition("=")[0].removeprefix("override ")
    return (config_dir() / key).is_dir() or key.startswith("hydra/")


def _unknown_option(err: Exception, overrides: Sequence[str]) -> str:
    """``experiment=nope``: the message lists the group's options; a missing plugin names its extra."""
    text = str(err)
    match = re.search(r"Could not (?:find|load) '([\w/]+)/(\w+)'", text)
    if match:
        group, name = match.groups()
        chosen = next((o.partition("=")[2] for o in overrides if o.lstrip("+").startswith(f"{group}=")), name)
        if name in PLUGIN_EXTRAS and not plugin_installed(PLUGIN_EXTRAS[name][0]):
            module, extra = PLUGIN_EXTRAS[name]
            return (
                f"{group}={chosen} needs the Hydra plugin {module.split('.')[-1]}, which is not installed: "
                f"pip install 'symlit[{extra}]'"
            )
        options = _group_options(group)
        close = difflib.get_close_matches(chosen, options, n=1)
        hint = f"did you mean {group}={close[0]}? " if close else ""
        listed = ", ".join(options) if options else "none"
        return f"unknown {group} {chosen!r}; {hint}choose one of: {listed} (conf/{group}/)"
    return _first_line(err)


def plugin_installed(module: str) -> bool:
    """Whether ``module`` (e.g. ``hydra_plugins.hydra_submitit_launcher``) can be imported."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _bad_key(err: Exception, config_name: str, overrides: Sequence[str], compose: Callable[..., DictConfig]) -> str:
    """``trainer.max_epoch=3``: the closest existing key, else the keys at that level."""
    text = f"{err}\n{err.__cause__ or ''}"  # the cause names the innermost key (inside a dict value too)
    match = re.search(r"full_key: ([\w.]+)", text) or re.search(r"Could not override '([\w.]+)'", text)
    if not match:
        return _first_line(err)
    key = match.group(1)
    parent, _, leaf = key.rpartition(".")
    named = [o.lstrip("+~").partition("=")[0] for o in overrides]
    others = [o for o, k in zip(overrides, named) if not (key == k or key.startswith(f"{k}."))]
    from hydra.errors import HydraException

    try:
        base = compose(config_name, overrides=others)
    except HydraException:
        return _first_line(err)
    node = OmegaConf.select(base, parent) if parent else base
    if not isinstance(node, DictConfig):
        return f"{key} does not exist: {parent} is not a group of keys"
    keys = [str(k) for k in node]
    where = parent or "the top level"
    if leaf in keys:
        return _first_line(err)
    if not keys:
        return f"{where} has no keys yet; add one with a leading +: +{key}=..."
    close = difflib.get_close_matches(leaf, keys, n=1, cutoff=0.6)
    if close:
        return f"{key} is not a key of {where}; did you mean {f'{parent}.' if parent else ''}{close[0]}?"
    return f"{key} is not a key of {where}; its keys are: {', '.join(keys)} (a new key needs a leading +)"


def _check_types(cfg: DictConfig, defaults: DictConfig, overrides: Sequence[str], swept: dict[str, list[Any]]) -> None:
    """A value whose type differs from the key's default (a word where a number is expected); every
    value of a sweep (``swept``: key to values) is checked."""
    for override in overrides:
        if _is_group_choice(override) or override.startswith("~"):
            continue
        key = override.lstrip("+").partition("=")[0]
        if key in UNION_KEYS:
            continue
        default = OmegaConf.select(defaults, key, default=None, throw_on_missing=False)
        values = swept.get(key, [OmegaConf.select(cfg, key, default=None, throw_on_missing=False)])
        expected = _kind(default)
        for value in values:
            if default is None or value is None or isinstance(value, (DictConfig, ListConfig, dict, list)):
                continue
            if expected and not _fits(value, default):
                raise CommandLineError(f"{key}={value!r} must be {expected} (its default is {default!r})")


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    return None


def _fits(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_required(cfg: DictConfig, check_files: bool) -> None:
    """Required keys are given, and a checkpoint exists before Hydra creates a run directory for it."""
    for key in cfg:
        if key != "hydra" and OmegaConf.is_missing(cfg, key):
            example = REQUIRED_EXAMPLES.get(str(key), f"{key}=...")
            raise CommandLineError(f"{key} is required: add {example}")
    ckpt = cfg.get("ckpt")
    if check_files and isinstance(ckpt, str) and not Path(ckpt).is_file():
        raise CommandLineError(
            f"ckpt={ckpt}: no such file; pass a checkpoint written by symlit-train, e.g. {REQUIRED_EXAMPLES['ckpt']}"
        )
