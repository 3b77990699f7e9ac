"""Walk-forward folds on real data: each fold trains on everything before its test period and is tested on it.

A fold is a test period (a calendar year, or from a date to the end of the data) with the validation days just
before it and the training rows before those. Each fold is one main job (`runs.job.train_job`) on the market
cut at the fold's end, so no fold sees a bar after its test period.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ndjax.data.calendar import row_at_or_after, to_day
from ndjax.data.loading import listed_symbols
from ndjax.data.market import DataError
from ndjax.ensemble import ensemble
from ndjax.metrics import PathStats, summary
from ndjax.runs.folder import load_run
from ndjax.runs.job import JobResult, JobSpec, held_out_policy, prepare_run, train_job


@dataclass(frozen=True)
class Fold:
    """Training until `train_end`, validation until `val_end`, test `test_start .. test_end` (dates, inclusive)."""

    name: str
    train_end: str
    val_end: str
    test_start: str
    test_end: str


def make_folds(dates: np.ndarray, test_starts: list[str], val_days: int = 180, min_train_days: int = 250) -> list[Fold]:
    """Folds whose tests start at `test_starts` (sorted dates) and end the day before the next one (the last
    fold ends with the data); validation is the `val_days` calendar days before each test."""
    starts = sorted(to_day(s) for s in test_starts)
    folds = []
    for k, start in enumerate(starts):
        end = starts[k + 1] - 1 if k + 1 < len(starts) else dates[-1]
        val_end = start - 1
        train_end = val_end - val_days
        if train_end - dates[0] < min_train_days:
            raise DataError(f"walk-forward fold {start}: training would end {train_end}, fewer than {min_train_days} "
                            f"days after the data's first day {dates[0]}")
        if row_at_or_after(dates, start) >= len(dates) or start > end:
            raise DataError(f"walk-forward fold {start}: no test rows in the data ({dates[0]} .. {dates[-1]})")
        name = str(start)[:4] if k + 1 < len(starts) and str(end)[:4] == str(start)[:4] else f"{start} .. {end}"
        folds.append(Fold(name=name, train_end=str(train_end), val_end=str(val_end), test_start=str(start),
                          test_end=str(end)))
    return folds


def yearly_tests(dates: np.ndarray, first_year: int, val_days: int = 180, min_train_days: int = 250) -> list[str]:
    """First days of one test per calendar year, from `first_year` (or the first year whose fold has `val_days`
    of validation and `min_train_days` of training after the data's first date) to the year of the last date of
    `dates (T,)`."""
    last = int(str(dates[-1])[:4])
    starts = [np.datetime64(f"{y}-01-01") for y in range(first_year, last + 1)]
    starts = [d for d in starts if d - val_days - dates[0] >= min_train_days]
    if not starts:
        raise DataError(f"walk-forward: no test year from {first_year} leaves {min_train_days} training and {val_days} "
                        f"validation days in the data ({dates[0]} .. {dates[-1]})")
    return [str(d) for d in starts]


def fold_universe(spec: JobSpec, fold: Fold) -> tuple[str, ...] | None:
    """The symbols a fold trades: those of the source's list (every file of its folder without one) with a bar
    before the fold's test starts; a symbol listed later was not known then. A listed name with no file is kept,
    for the loader to name. None for the synthetic market; `DataError` if nothing of the list is left."""
    if spec.source.data_dir is None:
        return spec.source.symbols
    listed = listed_symbols(spec.source.data_dir, fold.val_end)
    if spec.source.symbols is None:
        return tuple(listed)
    later = [s for s in spec.source.symbols if s not in listed]
    files = listed_symbols(spec.source.data_dir, None) if later else []  # read the folder again only when needed
    kept = tuple(s for s in spec.source.symbols if s in listed or s not in files)
    if not kept:
        raise DataError(f"walk-forward fold {fold.name}: none of the symbols {', '.join(spec.source.symbols)} of "
                        f"{spec.source.data_dir} has a bar on or before {fold.val_end}, the end of its validation")
    return kept


def fold_spec(spec: JobSpec, fold: Fold) -> JobSpec:
    """The main job of one fold: the market of `spec` (over `fold_universe`) cut at the fold's test end, split at
    its training and validation ends."""
    source = replace(spec.source, end=fold.test_end, symbols=fold_universe(spec, fold))
    return replace(spec, source=source, train_end=fold.train_end, val_end=fold.val_end)


def run_fold(spec: JobSpec, fold: Fold, out: str | Path, **job_kwargs: Any) -> JobResult:
    """Train and test one fold (`fold_spec`) into the run folder `out`."""
    return train_job(fold_spec(spec, fold), out, **job_kwargs)


def evaluate_ensemble(spec: JobSpec, fold: Fold, run_dirs: list[str | Path]) -> tuple[dict[str, PathStats], dict, Any]:
    """The seed ensemble (`ndjax.ensemble`) of the best checkpoints of the fold's runs in `run_dirs` (trained by
    `run_fold` from `spec` with different seeds), tested on the fold beside the baselines as `train_job` tests one
    run. Returns `(stats, paths, dates)` by strategy name, as `JobResult.stats`, `.paths` and `.dates`."""
    prepared = prepare_run(fold_spec(spec, fold))
    runs = [load_run(d) for d in run_dirs]
    paths = held_out_policy(prepared, *ensemble(runs[0].graphdef, [r.params for r in runs]), runs[0].context).paths
    stats = {k: summary(v, prepared.config.periods_per_year) for k, v in paths.items()}
    return stats, paths, prepared.market.dates[prepared.val_rows + 1:]


def validation_sortino(checkpoint_meta: Mapping[str, Any]) -> float:
    """The validation Sortino in a best checkpoint's meta (`JobResult.checkpoint_meta`, `Run.checkpoint_meta`;
    NaN when it was not recorded): a criterion that does not depend on the run's own objective, so runs trained at
    different risk aversions compare on it."""
    return float(checkpoint_meta.get("val", {}).get("sortino", np.nan))


def choose_by_validation(scores: dict[Any, float]) -> Any:
    """Nested validation inside a fold: the key of `scores` (key -> `validation_sortino` of its run) with the highest
    figure; NaN never wins, ties go to the first key. Raises `DataError` when every figure is NaN."""
    ranked = [k for k, v in scores.items() if not np.isnan(v)]
    if not ranked:
        raise DataError(f"nested validation: no run recorded a validation Sortino ({', '.join(map(str, scores))})")
    return max(ranked, key=lambda k: scores[k])


def drawdown_target(policy_dd: float, hold_dd: float) -> tuple[float, bool]:
    """The walk-forward limit on a fold's drawdown, max(buy and hold's, 20 %), and whether it holds."""
    limit = max(hold_dd, 0.20)
    return limit, policy_dd <= limit

