"""Paper trading from end to end: open the ledger and the broker, pick the model that trades (the ledger's
champion, or the run given), replay or run the day's cycle, and write the report. `experiments/paper.py` is this
function behind flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ndjax.paper.broker import Broker
from ndjax.paper.cycle import PaperConfig, PaperSession
from ndjax.paper.ledger import Ledger, LedgerIdentity
from ndjax.paper.report import write_paper_report
from ndjax.paper.simulated import SimulatedBroker
from ndjax.runs.folder import RunError, load_market, load_run, run_arrays


@dataclass(frozen=True)
class PaperResult:
    """Days recorded by this call, the ledger's last day, the report text (None before two days) and its folder."""

    recorded: int
    last_date: str | None
    text: str | None
    out: Path


def open_session(run_dir: str | Path, ledger_path: str | Path, *, data_dir: str | None = None, symbols: Any = None,
                 broker: str = "sim",
                 equity: float = 25_000.0, config: PaperConfig | None = None, out: str | Path | None = None,
                 alpaca: dict[str, Any] | None = None) -> PaperSession:
    """A session over the run's market (or `data_dir`), trading the ledger's champion if it has one."""
    run = load_run(run_dir)
    market = load_market(run, data_dir, symbols=symbols)
    identity = LedgerIdentity(tuple(market.symbols), tuple(bool(x) for x in market.is_crypto), broker, float(equity))
    ledger = Ledger.open(ledger_path, identity)
    champion = ledger.champion()
    if champion is not None and Path(champion["run"]) != Path(run_dir):
        run = load_run(champion["run"], step=champion["checkpoint_step"])
    if broker == "sim":
        chosen: Broker = SimulatedBroker(run_arrays(run, market), market.dates, market.symbols,
                                         run.config.market_params(is_crypto=market.is_crypto))
    elif broker == "alpaca":
        from ndjax.paper.alpaca import AlpacaBroker

        chosen = AlpacaBroker(market.symbols, market.is_crypto, **(alpaca or {}))
    else:
        raise RunError(f"paper: unknown broker {broker!r}; expected 'sim' or 'alpaca'")
    session = PaperSession(run, market, ledger, chosen, config or PaperConfig(),
                           Path(out) if out else Path(ledger_path).parent)
    if champion is not None:
        session.model_id = champion["id"]
    return session


def paper_trade(session: PaperSession, *, start: Any = None, through: Any = None, rows: bool = True,
                progress: Any = None) -> PaperResult:
    """Run every cycle from the ledger's last day (or `start`) through `through`, then write the report."""
    recorded = session.replay(start, through, progress)
    text = None
    if len(session.ledger.days()) >= 2:
        text, _ = write_paper_report(session.ledger, session.out, session.market.periods_per_year, rows=rows)
    return PaperResult(recorded=recorded, last_date=session.ledger.last_date(), text=text, out=session.out)
