"""A run folder: the typed `RunConfig` (written and read here, nowhere else), orbax checkpoints, metrics and reports.

    run/config.json       RunConfig: market source, date split, TrainConfig, HParams, seed, symbols, normaliser
    run/checkpoints/      latest and best-k TrainStates (train/checkpoints.py)
    run/metrics.jsonl     one line per validation (train/loop.py)
    run/test_report.txt   the held-out report (and test_daily.csv, test_summary.json, equity.png)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from ndjax.data.arrays import MarketArrays, prepare
from ndjax.data.features import FEATURE_NAMES, Normalizer
from ndjax.data.market import MarketData, UnknownSymbolError
from ndjax.data.source import ALL_SYMBOLS, MarketSource
from ndjax.dynamics import MarketParams
from ndjax.errors import NdjaxError
from ndjax.policy import PolicyConfig
from ndjax.report.writers import write_json
from ndjax.train.checkpoints import CheckpointError, RunCheckpoints
from ndjax.train.config import HParams, TrainConfig, market_params
from ndjax.train.loop import CHECKPOINT_DIR
from ndjax.train.trainer import make_template

CONFIG_FILE = "config.json"
FORMAT = "ndjax-run/2"
SWEEP_BEST = "best"
"""The link, inside a sweep's folder, to its best run (`runs.sweeps.save_sweep_runs`)."""


class RunError(NdjaxError):
    """A run folder or an input file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to rebuild a run's market, model and rules."""

    source: MarketSource
    train: TrainConfig
    hparams: HParams
    seed: int
    symbols: tuple[str, ...]
    is_crypto: tuple[bool, ...]
    periods_per_year: int
    split: dict[str, tuple[str, str]]  # "train" / "val" / "test": first and last date
    normalizer: Normalizer
    feature_names: tuple[str, ...] = FEATURE_NAMES

    def market_params(self, fill: str = "hard", is_crypto: Any = None) -> MarketParams:
        """The transition's params of this run (its fees, caps, margins and interest mode) with `fill`."""
        mask = np.asarray(self.is_crypto if is_crypto is None else is_crypto, bool)
        return market_params(self.hparams, mask, fill, self.train.interest, self.train.margin_call)

    def to_dict(self) -> dict[str, Any]:
        train = dataclasses.asdict(self.train)
        return {"format": FORMAT, "source": self.source.to_dict(), "train": train,
                "hparams": {f.name: float(getattr(self.hparams, f.name)) for f in dataclasses.fields(HParams)},
                "seed": self.seed, "symbols": list(self.symbols), "is_crypto": [bool(x) for x in self.is_crypto],
                "periods_per_year": self.periods_per_year, "split": {k: list(v) for k, v in self.split.items()},
                "normalizer": self.normalizer.to_dict(), "feature_names": list(self.feature_names)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        train = dict(d["train"])
        # a run saved before `w_per_asset` existed was trained with the head it did not shift
        # (and one saved before `features` existed read the base features; `n_features` is now derived from them)
        policy = {"w_per_asset": False, "features": "base", **train["policy"]}
        policy.pop("n_features", None)
        train["policy"] = PolicyConfig(**policy)
        return cls(source=MarketSource.from_dict(d["source"]), train=TrainConfig(**train),
                   hparams=HParams(**d["hparams"]), seed=int(d["seed"]), symbols=tuple(d["symbols"]),
                   is_crypto=tuple(bool(x) for x in d["is_crypto"]), periods_per_year=int(d["periods_per_year"]),
                   split={k: tuple(v) for k, v in d["split"].items()},
                   normalizer=Normalizer.from_dict(d["normalizer"]), feature_names=tuple(d["feature_names"]))


def save_config(run_dir: str | Path, config: RunConfig) -> Path:
    """Write `run_dir/config.json` atomically."""
    return write_json(Path(run_dir) / CONFIG_FILE, config.to_dict())


def load_config(run_dir: str | Path) -> RunConfig:
    """Read `run_dir/config.json`; `RunError` names the file and what is wrong."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise RunError(f"{path}: not found; is {run_dir} a run folder written by experiments/train.py?")
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise RunError(f"{path}: not JSON ({e})") from None
    found = d.get("format") if isinstance(d, dict) else None
    if isinstance(found, str) and found.startswith("ndjax-run/") and found != FORMAT:
        version = found.removeprefix("ndjax-run/")
        if version.isdigit() and int(version) > int(FORMAT.removeprefix("ndjax-run/")):
            raise RunError(f"{path}: format {found} was written by a newer ndjax than this one (which reads "
                           f"{FORMAT}); upgrade ndjax to use this run")
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise RunError(f"{path}: not a {FORMAT} run configuration "
                       f"(format {d.get('format') if isinstance(d, dict) else None!r}); "
                       "runs written before the orbax checkpoints must be trained again")
    try:
        config = RunConfig.from_dict(d)
    except (KeyError, TypeError, ValueError) as e:
        raise RunError(f"{path}: unreadable run configuration ({type(e).__name__}: {e})") from None
    if len(config.is_crypto) != len(config.symbols):
        raise RunError(f"{path}: {len(config.symbols)} symbols but {len(config.is_crypto)} asset classes")
    return config


@dataclass(frozen=True, eq=False)
class Run:
    """A trained run: its configuration and the parameters of its best checkpoint (or of the one asked for)."""

    path: Path
    config: RunConfig
    graphdef: nnx.GraphDef
    params: Any
    step: int
    checkpoint_meta: dict

    @property
    def context(self) -> int:
        """Rows of history a decision reads (`PolicyConfig.context`)."""
        return self.config.train.policy.context

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.config.symbols

    @property
    def is_crypto(self) -> np.ndarray:
        return np.asarray(self.config.is_crypto, bool)


def load_run(path: str | Path, step: int | None = None) -> Run:
    """The run at `path`: its config and the best checkpoint's parameters (or those saved at `step`). A sweep's
    folder (`experiments/sweep.py --out`) stands for its best run, `path/best`."""
    path = Path(path)
    if not (path / CHECKPOINT_DIR).is_dir() and (path / SWEEP_BEST / CONFIG_FILE).is_file():
        path = path / SWEEP_BEST
    config = load_config(path)
    graphdef, template = make_template(config.train, config.hparams)
    try:
        with RunCheckpoints(path / CHECKPOINT_DIR, existing=True) as checkpoints:
            chosen = checkpoints.best_step() if step is None else step
            if step is not None and step not in checkpoints.steps():
                raise RunError(f"{path / CHECKPOINT_DIR}: no checkpoint at step {step} (have {checkpoints.steps()})")
            state, meta = checkpoints.restore(chosen, template)
    except CheckpointError as e:
        raise RunError(str(e)) from None
    return Run(path=path, config=config, graphdef=graphdef, params=state.params, step=int(meta["step"]),
               checkpoint_meta=meta)


def check_equity(value: float | None, flag: str) -> float | None:
    """`value` (None passes) if it is a finite positive amount of money; else `RunError` naming `flag`."""
    if value is not None and not (np.isfinite(value) and value > 0):
        raise RunError(f"{flag}: a starting equity must be a positive amount, got {value:g}")
    return value


def load_market(run: Run, data_dir: str | Path | None = None, *, end: Any = None,
                symbols: Sequence[str] | str | None = None, repair: bool | None = None,
                period: tuple[Any, Any] = (None, None)) -> MarketData:
    """The run's market rebuilt from its stored source (from the same start, so features see the same history),
    optionally from a newer `data_dir`, to the data's last row or to `end`: the run's stored end bounds its
    training only. `repair` (default: the run's) drops bad rows with a warning instead of raising.

    `symbols` picks the universe: the run's own (default), a list, or `"all"`: every file of the folder with a bar
    in `period` (first, last day, None: no bound) and in the days read; the others are named on stderr
    (`data.source.active_symbols`). The
    policy is asset-equivariant and its features are normalised by the run's stored normaliser, so it trades
    any universe; asset classes come from the symbols.
    """
    source = run.config.source
    folder = data_dir or source.data_dir
    if symbols is None:
        chosen: Any = run.symbols if folder else None
    elif isinstance(symbols, str) and symbols == ALL_SYMBOLS:
        if not folder:
            raise RunError("symbols 'all' needs a data folder; this run was trained on the synthetic market")
        chosen = ALL_SYMBOLS
    else:
        chosen = tuple(symbols)
    try:
        market = source.load(data_dir=data_dir, symbols=chosen, end=end, to_last_row=True, repair=repair,
                             period=period)
    except UnknownSymbolError as e:
        if symbols is None:
            raise RunError(f"{e}; to trade the folder's own symbols pass symbols 'all' (or a list)") from None
        raise
    return market


def run_arrays(run: Run, market: MarketData) -> MarketArrays:
    """Device arrays of `market` with features normalised by the run's stored normaliser."""
    return prepare(market, market.n_days, run.config.normalizer)[1]


def restore_params(run_dir: str | Path, cfg: TrainConfig) -> Any:
    """The best checkpoint's parameters of another run, for fine-tuning a model of the same shape (`--init-from`)."""
    run = load_run(run_dir)
    if run.config.train.policy != cfg.policy:
        raise RunError(f"{run_dir}: its policy {run.config.train.policy} differs from this run's {cfg.policy}")
    return run.params


def content_hash(run: Run) -> str:
    """A short hash of the model's parameters: the same bytes, the same model."""
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(run.params):
        h.update(np.asarray(leaf).tobytes())
    return h.hexdigest()[:16]
