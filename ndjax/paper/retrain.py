"""Retraining while trading: every K cycles a challenger is fine-tuned from the champion on data up to the day,
and promoted only if it beats the champion on the most recent validation window.

The challenger trains on rows up to `val_days` before the day, with one evaluation at its end (so no checkpoint is
picked on the window it is judged on). Both models are then simulated with hard fills over the last `val_days`
rows, each with its own feature normaliser, and scored by the run's objective. Every decision, promoted or
rejected, is a row of the ledger's `models` table.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import jax

from ndjax.errors import ConfigError
from ndjax.loss import evaluate_returns
from ndjax.paper.cycle import PaperSession, content_hash
from ndjax.runs.evaluate import simulate_run
from ndjax.runs.folder import Run, load_run, run_arrays
from ndjax.runs.job import JobSpec, start_run
from ndjax.train.config import objective_weights
from ndjax.train.loop import fit


@dataclass(frozen=True)
class RetrainPolicy:
    """Fine-tune every `every` cycles for `steps` updates; judge on the last `val_days` rows."""

    every: int
    steps: int = 200
    val_days: int = 60
    data_dir: str | None = None  # where the day's data lives (default: the champion's source)

    def __post_init__(self) -> None:
        if self.every < 1 or self.steps < 1 or self.val_days < 2:
            raise ConfigError(f"RetrainPolicy: every, steps must be >= 1 and val_days >= 2, got {self}")

    def __call__(self, session: PaperSession, row: int) -> None:
        """Before the cycle of `row` (between cycles): on every `every`-th day after the first, counting this one."""
        recorded = len(session.ledger.days()) + 1  # with the day about to be recorded
        if recorded < 2 or (recorded - 1) % self.every:
            return
        retrain(session, row, self)


def score(run: Run, session: PaperSession, start: int, stop: int) -> float:
    """The run's objective of its hard-fill path over rows `start .. stop-1` of the session's market."""
    _, infos = simulate_run(run, run_arrays(run, session.market), start, stop)  # the policy alone, no baselines
    cfg, hp = run.config.train, run.config.hparams
    return float(evaluate_returns(infos.returns, cfg.objective, session.market.periods_per_year,
                                  **objective_weights(hp)))


def retrain(session: PaperSession, row: int, policy: RetrainPolicy) -> bool:
    """Train a challenger from the champion on data up to `row`, record the decision; True if promoted."""
    champion, dates = session.run, session.market.dates
    date = str(dates[row])
    start = row + 1 - policy.val_days
    if start - champion.context < champion.config.train.window + champion.context + 1:
        session.ledger.record_event(date, "retrain", f"skipped: {row + 1} rows are too few to train and validate")
        return False
    folder = policy.data_dir or champion.config.source.data_dir
    source = replace(champion.config.source, data_dir=folder, end=date,
                     symbols=tuple(session.market.symbols) if folder else champion.config.source.symbols)
    cfg = replace(champion.config.train, steps=policy.steps, eval_every=policy.steps)
    spec = JobSpec(source=source, train_end=str(dates[start - 1]), val_end=date, train=cfg,
                   hparams=champion.config.hparams, seed=champion.config.seed + row)
    out = Path(session.out) / "models" / date
    prepared = start_run(spec, out, need_test=False)
    fit(prepared.trainer, prepared.config.train, prepared.config.hparams, jax.random.PRNGKey(spec.seed), out,
        overwrite=True, init_params=champion.params, keep=1, progress=False)
    challenger = load_run(out)
    old, new = score(champion, session, start, row + 1), score(challenger, session, start, row + 1)
    promoted = new > old
    model = session.ledger.record_model(date, str(out.resolve()), challenger.step, content_hash(challenger),
                                        "promoted" if promoted else "rejected", old, new)
    session.ledger.record_event(date, "retrain", f"challenger {out} scored {new:.3f} against the champion's "
                                                 f"{old:.3f} on {dates[start]} .. {date}: "
                                                 f"{'promoted' if promoted else 'rejected'}")
    if promoted:
        session.use(challenger, model)
    return promoted
