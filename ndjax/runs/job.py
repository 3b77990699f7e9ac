"""The main job: load a market, split it by date, train a policy through the transition with checkpoints, then
simulate its best checkpoint on the held-out rows beside the baselines and write the report.

`experiments/train.py` is this function behind flags; tests call it directly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import jax

from ndjax.classical import classical_targets
from ndjax.cli import flag_name
from ndjax.data.arrays import context_split, prepare
from ndjax.data.calendar import to_day
from ndjax.data.source import MarketSource
from ndjax.data.splits import split_rows
from ndjax.metrics import PathStats, summary
from ndjax.report.writers import json_text, write_period_report
from ndjax.runs.evaluate import HeldOut, captured_share, held_out
from ndjax.runs.folder import CONFIG_FILE, RunConfig, RunError, load_config, load_run, restore_params, save_config
from ndjax.train.checkpoints import saved_steps
from ndjax.train.config import HParams, TrainConfig
from ndjax.train.loop import CHECKPOINT_DIR, check_fresh, fit
from ndjax.train.trainer import make_train


@dataclass(frozen=True)
class JobSpec:
    """What to train on and how: the market, the date split (default 60 % / 20 % / 20 % of the rows), the
    static configuration, the hyperparameters and the seed."""

    source: MarketSource = MarketSource()
    train_end: str | None = None
    val_end: str | None = None
    train: TrainConfig = TrainConfig()
    hparams: HParams = HParams()
    seed: int = 0


@dataclass(frozen=True)
class JobResult:
    """The report text, its statistics and held-out paths by name, the test dates, the run folder, the seconds
    spent, and the meta of the best checkpoint the test used (its step, score and validation metrics)."""

    text: str
    stats: dict[str, PathStats]
    paths: dict[str, Any]
    dates: Any
    run_dir: Path
    train_seconds: float
    total_seconds: float
    checkpoint_meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedRun:
    """A run folder ready to train: its stored configuration, the trainer, the market and its split rows."""

    config: RunConfig
    trainer: Any
    market: Any
    arrays: Any
    train_rows: int
    val_rows: int


def check_spec(spec: JobSpec) -> JobSpec:
    """Raise `ConfigError` (naming the flag) if any part of `spec` is invalid; reads and writes nothing."""
    spec.hparams.check()
    spec.source.check()
    for name in ("train_end", "val_end"):
        if getattr(spec, name) is not None:
            to_day(getattr(spec, name), name=flag_name(name))
    return spec


def _flat(spec: JobSpec) -> dict[str, Any]:
    """Every flag-level value of `spec` by field name (source, date split, policy, training, hyperparameters)."""
    train = {f.name: getattr(spec.train, f.name) for f in fields(TrainConfig) if f.name != "policy"}
    return {**asdict(spec.source), "train_end": spec.train_end, "val_end": spec.val_end,
            **asdict(spec.train.policy), **train, **{f.name: getattr(spec.hparams, f.name) for f in fields(HParams)},
            "seed": spec.seed}


def _same(name: str, given: Any, stored: Any) -> bool:
    if given is None or stored is None:
        return given is stored
    if name == "data_dir":
        return Path(given).resolve() == Path(stored).resolve()
    if name in ("start", "end"):
        return to_day(given) == to_day(stored)
    if isinstance(given, (tuple, list)) or isinstance(stored, (tuple, list)):
        return tuple(given) == tuple(stored)
    if isinstance(given, (int, float)) and not isinstance(given, bool) and not isinstance(stored, bool):
        return math.isclose(float(given), float(stored), rel_tol=1e-6, abs_tol=1e-12)
    return given == stored


def resume_spec(out: str | Path, given: Mapping[str, Any]) -> JobSpec:
    """The spec the run in `out` was trained with (its config.json), for `--resume`. `given` maps the flags the
    user passed (field names) to their values; one that differs from the stored run raises `RunError` naming the
    flag and both values. A `--train-end`/`--val-end` matches when it selects the same rows."""
    out = Path(out)
    config = load_config(out)
    split = config.split
    train = replace(config.train, periods_per_year=TrainConfig.periods_per_year)
    stored = JobSpec(source=config.source, train_end=split["train"][1], val_end=split["val"][1], train=train,
                     hparams=config.hparams, seed=config.seed)
    values = _flat(stored)
    for name, value in given.items():
        if name not in values:
            continue
        if name in ("train_end", "val_end") and value is not None:
            part, following = ("train", "val") if name == "train_end" else ("val", "test")
            day = to_day(value, name=flag_name(name))
            if to_day(split[part][1]) <= day and (following not in split or day < to_day(split[following][0])):
                continue
        elif _same(name, value, values[name]):
            continue
        raise RunError(f"{out / CONFIG_FILE}: {flag_name(name)} {value} differs from the run's {values[name]}; "
                       "--resume continues the run as it was configured (drop the flag, or train a new run into "
                       "another --out)")
    return stored


def prepare_run(spec: JobSpec, *, need_test: bool = True, log: Any = None) -> PreparedRun:
    """Load and split the market, build the run's `RunConfig` and the trainer (training rows, validation rows with
    encoder context); writes nothing. With `need_test=False` the validation may run to the last row. `log`
    receives one line describing the split."""
    hp = check_spec(spec).hparams
    market = spec.source.load()
    a, b = split_rows(market, spec.train_end, spec.val_end, need_test=need_test)
    normalizer, arrays = prepare(market, a, names=spec.train.policy.feature_names)
    cfg = replace(spec.train, periods_per_year=market.periods_per_year)
    L = cfg.policy.context
    if b < L:
        raise RunError(f"date split: validation ends at row {b}, before {L} rows of encoder context exist")
    dates = market.dates
    split = {"train": (str(dates[0]), str(dates[a - 1])), "val": (str(dates[a]), str(dates[b - 1]))}
    if b < market.n_days:
        split["test"] = (str(dates[b]), str(dates[-1]))
    config = RunConfig(source=spec.source, train=cfg, hparams=hp, seed=spec.seed, symbols=tuple(market.symbols),
                       is_crypto=tuple(bool(x) for x in market.is_crypto), periods_per_year=market.periods_per_year,
                       split=split, normalizer=normalizer, feature_names=cfg.policy.feature_names)
    if log is not None:
        log(f"ndjax: {market.n_assets} assets ({int(market.is_crypto.sum())} crypto), {market.n_days} rows "
            f"{dates[0]} .. {dates[-1]}; " + ", ".join(f"{k} {v}" for k, v in split.items()))
    trainer = make_train(cfg, arrays.rows(0, a), context_split(arrays, a, b, L))
    return PreparedRun(config=config, trainer=trainer, market=market, arrays=arrays, train_rows=a, val_rows=b)


def start_run(spec: JobSpec, out: str | Path, *, need_test: bool = True, log: Any = None,
              resume: bool = False) -> PreparedRun:
    """`prepare_run`, then write `out/config.json`; with `resume` the folder's config.json must be the one this spec
    gives (it is not written again)."""
    out = Path(out)
    prepared = prepare_run(spec, need_test=need_test,
                           log=None if log is None else (lambda line: log(f"{line}; run folder {out}")))
    if not resume:
        save_config(out, prepared.config)
        return prepared
    rebuilt, stored = prepared.config.to_dict(), load_config(out).to_dict()
    if json_text(rebuilt) != json_text(stored):
        raise RunError(f"{out / CONFIG_FILE}: the data or configuration rebuilt for --resume differs from the stored "
                       f"run ({_differing(rebuilt, stored)}); nothing was written")
    return prepared


def interrupted_at(out: str | Path) -> str:
    """Where an interrupted run in `out` stands: its latest checkpoint (continue with --resume), or none."""
    steps = saved_steps(Path(out) / CHECKPOINT_DIR)
    if not steps:
        return f"{out} holds no checkpoint yet"
    return f"{out} is at step {steps[-1]} (continue with --resume --out {out})"


def _differing(new: dict, old: dict) -> str:
    keys = [k for k in sorted(set(new) | set(old)) if json_text(new.get(k)) != json_text(old.get(k))]
    return "differs in " + ", ".join(keys)


def held_out_policy(prepared: PreparedRun, graphdef: Any, params: Any, context: int) -> HeldOut:
    """The held-out test of a policy (`graphdef`, `params`, reading `context` rows) on the rows of `prepared` after
    its validation, hard fills, beside the baselines, the classical rules and (synthetic market) the oracle:
    `runs.evaluate.held_out`'s `HeldOut`, time on axis 0."""
    config = prepared.config
    return held_out(graphdef, params, prepared.arrays, prepared.val_rows, context, config.market_params("hard"), None,
                    config.train.initial_cash, config.source.truth(prepared.market), classical_targets(prepared.market))


def train_job(spec: JobSpec, out: str | Path, *, resume: bool = False, overwrite: bool = False,
              init_from: str | Path | None = None, keep: int = 3, rows: bool = True, progress: bool = True,
              log: Any = None) -> JobResult:
    """Train `spec` into the run folder `out` (or continue it with `resume`), then report the held-out test.

    A folder holding another run's checkpoints raises unless `overwrite` (they are deleted) or `resume`.
    `init_from` starts from another run's best parameters (fine-tuning). `log(message)` receives one line
    describing the data split. Raises `RunError`/`DataError` (both `ValueError`s) naming what is wrong.
    """
    t0 = time.perf_counter()
    out = Path(out)
    check_spec(spec)
    if resume and overwrite:
        raise RunError(f"{out}: --resume continues the run, --overwrite replaces it; give one of them")
    if resume and not (out / "checkpoints").is_dir():
        raise RunError(f"{out}: no checkpoints to resume from")
    check_fresh(out, resume=resume, overwrite=overwrite)
    if not (resume or overwrite) and (out / CONFIG_FILE).exists():
        raise RunError(f"{out}: holds another run's {CONFIG_FILE}; resume it, overwrite it, or train into an empty "
                       "folder")
    prepared = start_run(spec, out, log=log, resume=resume)
    config, b = prepared.config, prepared.val_rows
    cfg, hp = config.train, config.hparams
    init_params = restore_params(init_from, cfg) if init_from else None
    t_train = time.perf_counter()
    fit(prepared.trainer, cfg, hp, jax.random.PRNGKey(spec.seed), out, resume=resume, overwrite=overwrite,
        init_params=init_params, keep=keep, progress=progress)
    t_train = time.perf_counter() - t_train

    run = load_run(out)
    result = held_out_policy(prepared, run.graphdef, run.params, run.context)
    test_dates = prepared.market.dates[b + 1:]
    title = [f"Policy (best checkpoint, step {run.step}, validation score {float(run.checkpoint_meta['score']):.3f}), "
             f"held-out test {test_dates[0]} .. {test_dates[-1]}, hard fills"]
    stats_now = {k: summary(v, config.periods_per_year) for k, v in result.paths.items()}
    share = captured_share(stats_now)
    extra = [] if "oracle" not in stats_now else [
        "", "The oracle knows the synthetic market's conditional means and volatilities (ndjax/oracle.py).",
        f"Captured share (policy Sortino / oracle Sortino): {share:.2f}" if share is not None else
        "Captured share: undefined (the oracle's Sortino is not positive)"]
    text, stats = write_period_report(out, "test", title, test_dates, result.paths, config.periods_per_year, rows=rows,
                                      extra_sections=extra, summary_extra={"captured_share": share})
    return JobResult(text=text, stats=stats, paths=result.paths, dates=test_dates, run_dir=out, train_seconds=t_train,
                     total_seconds=time.perf_counter() - t0, checkpoint_meta=dict(run.checkpoint_meta))
