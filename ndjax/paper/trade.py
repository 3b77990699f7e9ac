"""Paper trading from end to end: open the ledger and the broker, pick the model that trades (the ledger's
champion, or the run given), replay or run the day's cycle, and write the report. `experiments/paper.py` is this
function behind flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ndjax.data.market import MarketData
from ndjax.paper.broker import Broker
from ndjax.paper.cycle import PaperConfig, PaperSession
from ndjax.paper.ledger import Ledger, LedgerError, LedgerIdentity
from ndjax.paper.report import write_paper_report
from ndjax.paper.simulated import SimulatedBroker
from ndjax.runs.folder import RunError, content_hash, load_market, load_run, run_arrays


@dataclass(frozen=True)
class PaperResult:
    """Days recorded by this call, the ledger's last day, the report text (None before two days) and its folder."""

    recorded: int
    last_date: str | None
    text: str | None
    out: Path


def open_session(run_dir: str | Path, ledger_path: str | Path, *, data_dir: str | None = None, symbols: Any = None,
                 market: MarketData | None = None, broker: str = "sim", equity: float | None = None,
                 adopt_account: bool = False, config: PaperConfig | None = None, out: str | Path | None = None,
                 alpaca: dict[str, Any] | None = None, new: bool | None = None,
                 repair: bool | None = None) -> PaperSession:
    """A session over the run's market (or `data_dir`, or a `market` already loaded), trading the ledger's champion
    if it has one: the run and checkpoint step the ledger recorded, whose parameters must still hash to the
    recorded content hash. `equity` None keeps a ledger's own starting equity (a new one starts from
    `DEFAULT_EQUITY`); `adopt_account` lets a new ledger at a real broker start from the broker's cash. `new`: see
    `Ledger.open`; `repair` drops bad rows of the data with a warning."""
    run = load_run(run_dir)
    if market is None:
        market = load_market(run, data_dir, symbols=symbols, repair=repair)
    identity = LedgerIdentity(tuple(market.symbols), tuple(bool(x) for x in market.is_crypto), broker,
                              None if equity is None else float(equity))
    ledger = Ledger.open(ledger_path, identity, new=new)
    try:
        champion = ledger.champion()
        if champion is not None:
            run = load_run(champion["run"], step=champion["checkpoint_step"])
            found = content_hash(run)
            if found != champion["content_hash"]:
                raise LedgerError(f"{ledger.path}: model {champion['id']} ({champion['run']}, step "
                                  f"{champion['checkpoint_step']}) traded with content hash "
                                  f"{champion['content_hash']}, "
                                  f"the checkpoint there now hashes to {found}: it was overwritten; restore it or use "
                                  "another ledger")
        if broker == "sim":
            chosen: Broker = SimulatedBroker(run_arrays(run, market), market.dates, market.symbols,
                                             run.config.market_params(is_crypto=market.is_crypto))
        elif broker == "alpaca":
            from ndjax.paper.alpaca import AlpacaBroker

            chosen = AlpacaBroker(market.symbols, market.is_crypto, **(alpaca or {}))
        else:
            raise RunError(f"paper: unknown broker {broker!r}; expected 'sim' or 'alpaca'")
        session = PaperSession(run, market, ledger, chosen, config or PaperConfig(),
                               Path(out) if out else Path(ledger_path).parent, adopt_account=adopt_account)
    except BaseException:
        ledger.close()
        raise
    if champion is not None:
        session.model_id = champion["id"]
    return session


def paper_trade(session: PaperSession, *, start: Any = None, through: Any = None, rows: bool = True,
                progress: Any = None) -> PaperResult:
    """Run every cycle from the ledger's last day (or `start`) through `through`, then write the report. Raises
    `LedgerError` naming the dates for a `start` the ledger cannot take, and (after the report) for a `through` the
    data does not reach, or, without `through`, when there was no new row."""
    session.ledger.check_replay(session.market.dates, start, through)
    recorded = session.replay(start, through, progress)
    text = None
    if len(session.ledger.days()) >= 2:
        probe = session.config
        text, _ = write_paper_report(session.ledger, session.out, session.market.periods_per_year, rows=rows,
                                     probe=(probe.probe_notional, probe.probe_max_outlay) if probe.probing else None)
    session.ledger.check_progress(session.market.dates, bool(session.market.is_crypto.any()), through, recorded)
    return PaperResult(recorded=recorded, last_date=session.ledger.last_date(), text=text, out=session.out)
