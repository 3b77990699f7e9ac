"""Run folders after training: load the configuration, policy and normaliser, rebuild the market,
size next-day orders, and read a positions file.

A run folder is what `experiments/train.py` writes: `config.json` (`config` = TrainConfig incl.
`policy`, `hparams`, `symbols`, `is_crypto`, `normalizer`, `split`, `args`) and
`checkpoints/` (best parameter sets listed in `index.json`). `experiments/evaluate.py` and
`experiments/plan.py` are thin command lines over this module.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ndjax.train import checkpoints as checkpoint
from ndjax.data.loading import load_daily
from ndjax.data.market import MarketData
from ndjax.dynamics import Action, MarketParams, PortfolioState, size_orders
from ndjax.data.features import Normalizer, compute_features
from ndjax.policy import PolicyConfig, create
from ndjax.train.trainer import HParams, MarketArrays, TrainConfig, market_arrays, market_params


class RunError(ValueError):
    """A run folder or an input file that cannot be used; the message names the file."""


def _known(cls: type, d: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in d.items() if k in names}


@dataclass(frozen=True, eq=False)
class Run:
    """A trained run: its stored configuration, the best checkpoint's parameters and the normaliser."""

    path: Path
    meta: dict  # config.json as stored
    config: TrainConfig
    hparams: HParams
    symbols: tuple[str, ...]
    is_crypto: np.ndarray  # (N,) bool
    normalizer: Normalizer
    graphdef: nnx.GraphDef
    params: Any
    checkpoint_path: Path
    checkpoint_meta: dict

    @property
    def args(self) -> dict:
        return dict(self.meta.get("args") or {})

    @property
    def lookback(self) -> int:
        return self.config.policy.lookback

    @property
    def periods_per_year(self) -> int:
        return int(self.meta.get("periods_per_year", self.config.periods_per_year))

    @property
    def interest(self) -> str:
        return self.config.interest

    def market_params(self, fill: str = "hard", is_crypto: Any = None) -> MarketParams:
        """The transition's params of this run (its fees, caps and interest mode) with `fill`."""
        mask = jnp.asarray(self.is_crypto if is_crypto is None else is_crypto, bool)
        return market_params(self.hparams, mask, fill, self.config.interest, self.config.margin_call)


def load_run(path: str | Path, checkpoint_file: str | Path | None = None) -> Run:
    """Load `path/config.json` and the best checkpoint (or `checkpoint_file`)."""
    path = Path(path)
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise RunError(f"{cfg_path}: not found; is {path} a run folder written by experiments/train.py?")
    try:
        meta = json.loads(cfg_path.read_text())
        raw = dict(meta["config"])
        policy = PolicyConfig(**_known(PolicyConfig, raw.pop("policy")))
        config = TrainConfig(policy=policy, **_known(TrainConfig, raw))
        hparams = HParams(**_known(HParams, meta["hparams"]))
        symbols = tuple(meta["symbols"])
        is_crypto = np.asarray(meta["is_crypto"], bool)
        normalizer = Normalizer.from_dict(meta["normalizer"])
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        raise RunError(f"{cfg_path}: unreadable run configuration ({type(e).__name__}: {e})") from e
    if is_crypto.shape != (len(symbols),):
        raise RunError(f"{cfg_path}: {len(symbols)} symbols but is_crypto has shape {is_crypto.shape}")
    graphdef, template = create(policy, jax.random.PRNGKey(0))
    ckpt = Path(checkpoint_file) if checkpoint_file else checkpoint.CheckpointManager(path / "checkpoints").best_path()
    params, ckpt_meta = checkpoint.load(ckpt, template)
    return Run(path=path, meta=meta, config=config, hparams=hparams, symbols=symbols, is_crypto=is_crypto,
               normalizer=normalizer, graphdef=graphdef, params=params, checkpoint_path=ckpt,
               checkpoint_meta=ckpt_meta)


def load_market(run: Run, data_dir: str | Path | None = None, *, end: Any = None) -> MarketData:
    """The run's market: `data_dir` (or the run's stored `--data-dir`) loaded for the run's symbols, from the
    run's stored `--start` (so features have the same history) to `end` (default: all rows); without
    either, the synthetic market rebuilt from the stored seed, days and signal."""
    args = run.args
    data_dir = data_dir or args.get("data_dir")
    if data_dir:
        market = load_daily(data_dir, symbols=list(run.symbols), start=args.get("start"), end=end)
    else:
        from ndjax.data.synthetic import synthetic_market

        if "synthetic_days" not in args:
            raise RunError(f"{run.path / 'config.json'}: no data_dir and no synthetic settings in 'args'; pass --data-dir")
        market = synthetic_market(int(args.get("seed", 0)), n_days=int(args["synthetic_days"]),
                                  signal_strength=float(args.get("signal", 0.0)))
        if end is not None:
            market = market.slice_dates(None, end)
    if tuple(market.symbols) != run.symbols:
        raise RunError(f"{data_dir or 'synthetic market'}: symbols {list(market.symbols)} differ from the run's "
                       f"{list(run.symbols)}")
    if not np.array_equal(np.asarray(market.is_crypto, bool), run.is_crypto):
        raise RunError(f"{data_dir or 'synthetic market'}: asset classes {market.is_crypto.tolist()} differ from "
                       f"the run's {run.is_crypto.tolist()}")
    return market


def run_arrays(run: Run, market: MarketData) -> MarketArrays:
    """Device arrays of `market` with features normalised by the run's stored normaliser."""
    return market_arrays(market, run.normalizer.apply(compute_features(market)))


def row_at_or_after(dates: np.ndarray, day: Any) -> int:
    return int(np.searchsorted(dates, np.datetime64(str(day)[:10], "D"), side="left"))


def row_at_or_before(dates: np.ndarray, day: Any) -> int:
    return int(np.searchsorted(dates, np.datetime64(str(day)[:10], "D"), side="right")) - 1


# ----------------------------------------------------------------------------- sizing (step 2)


# ----------------------------------------------------------------------------- positions file


def read_positions(path: str | Path, symbols: Sequence[str]) -> tuple[dict[str, float], float | None]:
    """Read a positions file: `(quantities by symbol, cash or None)`.

    CSV: a header `symbol,quantity` and one row per holding; the row whose symbol is `CASH`
    (any case) gives the cash balance (negative = margin debt). JSON: either
    `{"cash": 1234.5, "positions": {"AAPL": 10, ...}}` or `{"cash": ..., "positions":
    [{"symbol": "AAPL", "quantity": 10}, ...]}`. Quantities must be finite and >= 0 (long only);
    symbols must belong to the run. Errors raise `RunError` naming the file and row.
    """
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: positions file not found")
    known = set(symbols)
    quantities: dict[str, float] = {}
    cash: float | None = None

    def number(text: Any, where: str, what: str) -> float:
        try:
            x = float(text)
        except (TypeError, ValueError):
            raise RunError(f"{path}: {where}: {what} {text!r} is not a number") from None
        if not np.isfinite(x):
            raise RunError(f"{path}: {where}: {what} {text!r} is not finite")
        return x

    def add(symbol: Any, qty: Any, where: str) -> None:
        nonlocal cash
        sym = str(symbol or "").strip()
        if not sym:
            raise RunError(f"{path}: {where}: empty symbol")
        if sym.upper() == "CASH":
            if cash is not None:
                raise RunError(f"{path}: {where}: cash given twice")
            cash = number(qty, where, "cash")
            return
        if sym not in known:
            raise RunError(f"{path}: {where}: symbol {sym!r} is not traded by this run (symbols: {sorted(known)})")
        if sym in quantities:
            raise RunError(f"{path}: {where}: duplicate symbol {sym!r}")
        x = number(qty, where, "quantity")
        if x < 0:
            raise RunError(f"{path}: {where}: quantity {x} is negative (the book is long only)")
        quantities[sym] = x

    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise RunError(f"{path}: invalid JSON ({e})") from None
        if not isinstance(doc, dict):
            raise RunError(f"{path}: expected an object with 'cash' and 'positions'")
        if doc.get("cash") is not None:
            add("CASH", doc["cash"], "key 'cash'")
        pos = doc.get("positions", {})
        if isinstance(pos, dict):
            for sym, qty in pos.items():
                add(sym, qty, f"position {sym!r}")
        elif isinstance(pos, list):
            for i, item in enumerate(pos, 1):
                if not isinstance(item, dict) or "symbol" not in item or "quantity" not in item:
                    raise RunError(f"{path}: positions entry {i}: expected {{'symbol': ..., 'quantity': ...}}")
                add(item["symbol"], item["quantity"], f"positions entry {i}")
        else:
            raise RunError(f"{path}: 'positions' must be an object or a list")
        return quantities, cash

    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise RunError(f"{path}: empty file; expected a header 'symbol,quantity'")
        cols = [h.strip().lower() for h in header]
        if "symbol" not in cols or "quantity" not in cols:
            raise RunError(f"{path}: row 1 (header): expected columns 'symbol' and 'quantity', got {header}")
        i_sym, i_qty = cols.index("symbol"), cols.index("quantity")
        for n, row in enumerate(reader, 1):
            if not row or all(not c.strip() for c in row):
                continue
            where = f"row {n} (line {reader.line_num})"
            if len(row) <= max(i_sym, i_qty):
                raise RunError(f"{path}: {where}: expected {len(cols)} fields, got {len(row)}: {row}")
            add(row[i_sym], row[i_qty].strip(), where)
    return quantities, cash


# ----------------------------------------------------------------------------- evaluation


def simulate_run(run: Run, arrays: MarketArrays, start: int, stop: int, *, lag: int = 1,
                 initial_cash: float | None = None, fill: str = "hard", probe: bool = False,
                 **market_overrides: Any) -> tuple[Action, Any]:
    """The run's policy flat at the close of row `start`, deciding with `lag` bars of delay, over bars
    `start + lag .. stop - 1` (the encoder reads `lookback` rows of context before `start`).

    `market_overrides` replace `MarketParams` fields (e.g. `gap_fill=True`, `participation_cap=0.01`,
    `interest="debit"`, `probe_notional=0.05`); `probe` gives the state the trade memory probe mode needs.

    Returns `(actions, infos)` with time on axis 0 (`stop - start - lag` steps).
    """
    from ndjax.train.trainer import context_split, simulate_policy_jit

    L = run.lookback
    if not L <= start < stop - lag:
        raise RunError(f"period rows [{start}, {stop}): the start needs {L} rows of encoder context before it "
                       f"and at least {lag} bar(s) after it")
    ctx = context_split(arrays, start, stop, L)
    mp = run.market_params(fill).replace(**market_overrides)
    cash = float(run.config.initial_cash if initial_cash is None else initial_cash)
    return simulate_policy_jit(run.graphdef, run.params, ctx, mp, L, cash, lag=lag, probe=probe)


def per_symbol(infos: Any, actions: Action, closes: Any, is_crypto: Any, maker_fee: float,
               symbols: Sequence[str], liquidation_slippage: float = 0.001) -> list[dict[str, Any]]:
    """Per-asset attribution of one hard-fill path (no `gap_fill`; executions at the limit prices, forced
    sales at `close * (1 - liquidation_slippage)`).

    `infos`/`actions` `(T, N)` from a rollout starting flat; `closes (T + 1, N)` the marks: the close before
    the first bar, then each bar's close.
    PnL = realised (sells against the average cost, fees included) + unrealised (units held at the last
    close against their average cost) - interest; a bar's interest is allocated to the stocks in
    proportion to the stock value carried into it. The PnLs sum to the path's final - initial equity.
    """
    f = float(maker_fee)
    xb, xs = np.asarray(infos.buy_qty, np.float64), np.asarray(infos.sell_qty, np.float64)
    bp, sp = np.asarray(actions.buy_price, np.float64), np.asarray(actions.sell_price, np.float64)
    inv = np.asarray(infos.inventory, np.float64)
    T, N = xb.shape
    marks = np.asarray(closes, np.float64)
    if marks.shape != (T + 1, N):
        raise ValueError(f"per_symbol: closes of shape {marks.shape}, expected {(T + 1, N)}")
    q_before = np.concatenate([np.zeros((1, N)), inv[:-1]], 0)
    stock_value = np.where(np.asarray(is_crypto, bool), 0.0, q_before * marks[:-1])
    total = stock_value.sum(-1, keepdims=True)
    cost = np.asarray(infos.leverage_cost, np.float64)[:, None]
    interest = np.where(total > 0, cost * stock_value / np.where(total > 0, total, 1), 0).sum(0)
    held = np.zeros(N)
    basis = np.zeros(N)  # total cost of the units held (fees included)
    realised = np.zeros(N)
    forced = np.asarray(infos.forced_qty, np.float64)
    forced_px = marks[1:] * (1 - float(liquidation_slippage))
    for t in range(T):
        avg = np.where(held > 0, basis / np.where(held > 0, held, 1), 0)
        sold = np.minimum(xs[t], held)
        realised += sold * sp[t] * (1 - f) - sold * avg
        basis -= sold * avg
        held = held - sold
        basis += xb[t] * bp[t] * (1 + f)
        held = held + xb[t]
        avg = np.where(held > 0, basis / np.where(held > 0, held, 1), 0)
        called = np.minimum(forced[t], held)  # a margin call sells at the close after the bar's own trades
        realised += called * forced_px[t] * (1 - f) - called * avg
        basis -= called * avg
        held = inv[t]
    last = marks[-1]
    unrealised = held * last - basis
    fees = f * ((xb * bp).sum(0) + (xs * sp).sum(0) + (forced * forced_px).sum(0))
    placed_b, placed_s = np.asarray(infos.buy_order_qty) > 0, np.asarray(infos.sell_order_qty) > 0
    fb, fs = np.asarray(infos.buy_fill, np.float64), np.asarray(infos.sell_fill, np.float64)
    rows = []
    for i, s in enumerate(symbols):
        rows.append({
            "symbol": s, "asset_class": "crypto" if bool(np.asarray(is_crypto)[i]) else "stock",
            "pnl": float(realised[i] + unrealised[i] - interest[i]), "realised": float(realised[i]),
            "unrealised": float(unrealised[i]), "interest": float(interest[i]), "fees": float(fees[i]),
            "buys": int((xb[:, i] > 0).sum()), "sells": int((xs[:, i] > 0).sum()),
            "forced_sales": int((forced[:, i] > 0).sum()),
            "trades": int((xb[:, i] > 0).sum() + (xs[:, i] > 0).sum()),
            "buy_fill_rate": float(np.where(placed_b[:, i], fb[:, i], 0).sum() / max(placed_b[:, i].sum(), 1)),
            "sell_fill_rate": float(np.where(placed_s[:, i], fs[:, i], 0).sum() / max(placed_s[:, i].sum(), 1)),
            "final_quantity": float(held[i]), "final_value": float(held[i] * last[i]),
        })
    return rows


def lag_check(stats_1: Mapping[str, Any], stats_2: Mapping[str, Any], *, sortino_gap: float = 1.0,
              return_gap: float = 0.5, min_return_gap: float = 0.005) -> tuple[bool, list[str]]:
    """Compare `summary`s of the policy at lag 1 and lag 2. Flags a lookahead smell when one bar of extra
    delay costs more than `sortino_gap` of Sortino, or more than `return_gap` x |return at lag 1| of net
    return (and at least `min_return_gap`). Returns `(flagged, reasons)`."""
    s1, s2 = float(stats_1["sortino"]), float(stats_2["sortino"])
    r1, r2 = float(stats_1["net_pnl"]), float(stats_2["net_pnl"])
    reasons = []
    if s1 - s2 > sortino_gap:
        reasons.append(f"Sortino drops by {s1 - s2:.2f} (> {sortino_gap:g}) with one more bar of delay")
    if r1 - r2 > max(return_gap * abs(r1), min_return_gap):
        reasons.append(f"net return drops by {(r1 - r2) * 100:.2f} pp (> {return_gap:.0%} of |{r1 * 100:.2f}%|)")
    return bool(reasons), reasons


# ----------------------------------------------------------------------------- next-day plan


def _floor(x: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """Round quantities down to multiples of `unit`, after shaving 1e-6 relative (float32 sizing slack),
    so a rounded order never spends more than its share of the excess nor sells more than is held."""
    return np.floor(np.maximum(x, 0) * (1 - 1e-6) / unit + 1e-9) * unit


def plan_orders(run: Run, market: MarketData, arrays: MarketArrays, *, cash: float,
                quantities: Mapping[str, float] | None = None, row: int | None = None,
                max_stale_days: float = 5.0, share_unit: float = 1e-6, crypto_unit: float = 1e-8) -> dict[str, Any]:
    """Orders for the bar after row `row` (default: the last row) from the run's policy and a book of
    `cash` and `quantities` (units by symbol) marked at the row's closes.

    Sizing is `dynamics.size_orders` (the transition's steps 1-2: the next bar's interest, then all buys from one
    pool of excess equity) with `tradable` = the assets whose market is open on the next bar and that have a bar
    within `max_stale_days` calendar days; the others are listed under `skipped` with a reason.
    Quantities are rounded down to `share_unit` (stocks; 1 = whole shares) and `crypto_unit`.
    """
    T = market.n_days
    row = T - 1 if row is None else int(row)
    if not 0 <= row < T:
        raise RunError(f"plan: row {row} outside the {T} rows of the market")
    quantities = dict(quantities or {})
    unknown = sorted(set(quantities) - set(run.symbols))
    if unknown:
        raise RunError(f"plan: positions in {unknown}, which this run does not trade")
    symbols, N = run.symbols, len(run.symbols)
    is_crypto = run.is_crypto
    date = market.dates[row]

    # which markets trade on the next bar, and which symbols have a recent bar
    has_bar = np.asarray(market.tradable[: row + 1] > 0)
    last_bar = np.full(N, -1)
    for j in range(N):
        idx = np.flatnonzero(has_bar[:, j])
        if idx.size:
            last_bar[j] = idx[-1]
    stale = np.where(last_bar >= 0, (date - market.dates[np.maximum(last_bar, 0)]).astype(np.int64), np.inf)
    stock_open = float(market.stock_tradable_next[row]) > 0
    open_next = np.where(is_crypto, True, stock_open)
    recent = stale <= max_stale_days
    active = open_next & recent
    if row + 1 < T:
        days = float(market.days_elapsed[row + 1])
    else:
        days = 1.0 if is_crypto.any() else float(market.next_session_days[row])
    next_day = date + np.timedelta64(int(days), "D")

    # the policy's action: embedding of row `row` (enough context for every encoder layer), the book
    n_ctx = min(row + 1, (run.config.policy.n_layers + 1) * run.lookback + 1)
    feats = arrays.features[row + 1 - n_ctx: row + 1]
    valid = arrays.valid[row + 1 - n_ctx: row + 1]
    mark = arrays.close[row]
    q = np.asarray([float(quantities.get(s, 0.0)) for s in symbols])
    state = PortfolioState(cash=jnp.asarray(cash, mark.dtype), inventory=jnp.asarray(q, mark.dtype), mark=mark)
    mp = run.market_params("hard")

    @jax.jit
    def decide(params, feats, valid, state):
        from ndjax.policy import encode, policy_apply

        emb = encode(run.graphdef, params, feats, valid)[-1]
        action = policy_apply(run.graphdef)(params, emb, state)
        return action, size_orders(mp, state, action, jnp.asarray(active, mark.dtype), days)

    action, sizes = decide(run.params, feats, valid, state)
    f = float(run.hparams.maker_fee)
    ls, lc = float(run.hparams.stock_max_leverage), float(run.hparams.crypto_max_leverage)
    mm = float(run.hparams.maintenance_margin)
    bp, sp = np.asarray(action.buy_price, np.float64), np.asarray(action.sell_price, np.float64)
    unit = np.where(is_crypto, crypto_unit, share_unit)
    buy_q = _floor(np.asarray(sizes.buy_qty, np.float64), unit)
    sell_q = np.minimum(_floor(np.asarray(sizes.sell_qty, np.float64), unit), q)
    marks = np.asarray(mark, np.float64)

    orders, skipped = [], []
    for j, s in enumerate(symbols):
        cls = "crypto" if is_crypto[j] else "stock"
        if not recent[j]:
            why = "no bar yet" if last_bar[j] < 0 else f"no recent bar (last {market.dates[last_bar[j]]}, {int(stale[j])} days old)"
            skipped.append({"symbol": s, "asset_class": cls, "reason": why})
            continue
        if not open_next[j]:
            skipped.append({"symbol": s, "asset_class": cls, "reason": f"market closed on {next_day}"})
            continue
        for side, qty, price, frac in (("buy", buy_q[j], bp[j], action.buy_frac[j]),
                                       ("sell", sell_q[j], sp[j], action.sell_frac[j])):
            if qty <= 0:
                continue
            notional = float(qty * price)
            orders.append({
                "symbol": s, "asset_class": cls, "side": side, "limit_price": float(price),
                "quantity": round(float(qty), 10), "notional": notional, "fee": notional * f,
                "mark": float(marks[j]), "limit_vs_mark": float(price / marks[j] - 1), "fraction": float(frac),
            })
    value = q * marks
    return {
        "as_of": str(date), "next_day": str(next_day), "days_elapsed": days,
        "equity": float(cash + value.sum()), "cash": float(cash),
        "stock_value": float(value[~is_crypto].sum()), "crypto_value": float(value[is_crypto].sum()),
        "interest": float(sizes.interest), "equity_after_interest": float(sizes.equity),
        "initial_requirement": float(sizes.initial_requirement), "excess": float(sizes.excess),
        "buying_power_stock": float(sizes.excess) / (1 / ls + f),  # value the whole excess buys, per class
        "buying_power_crypto": float(sizes.excess) / (1 / lc + f),
        "maintenance_requirement": float(mm * value[~is_crypto].sum() + value[is_crypto].sum() / lc),
        "maker_fee": f, "stock_max_leverage": ls, "crypto_max_leverage": lc, "maintenance_margin": mm,
        "positions": {s: float(x) for s, x in zip(symbols, q) if x > 0},
        "orders": orders, "skipped": skipped,
        "run": str(run.path), "checkpoint": str(run.checkpoint_path),
    }
