"""The paper-trading command behind its flags: `experiments/paper.py` and `experiments/daily.py` (the cycle after
each fetch) both call `paper_command`; `parse_args` is its parser, whose defaults are the dataclasses' own."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from ndjax.cli import add_run_flags, parse_symbols
from ndjax.dynamics import ALPACA_CRYPTO_MAKER_FEE
from ndjax.errors import NdjaxError
from ndjax.paper.controls import Controls
from ndjax.paper.cycle import PaperConfig
from ndjax.paper.ledger import DEFAULT_EQUITY
from ndjax.paper.retrain import RetrainPolicy
from ndjax.paper.trade import PaperResult, open_session, paper_trade
from ndjax.probe import PROBE_FRACTION, PROBE_MAX_OUTLAY, parse_max_outlay

USAGE = """Paper trading on a ledger: replay history as if live with the simulated broker, or run the day's cycle
against Alpaca's paper (or, with --live, real) account.

    python experiments/paper.py --run runs/NAME --data-dir DATA --ledger paper/book.db \\
        --broker sim --equity 25000 --start 2025-07-01 --through 2025-10-01 --new
    python experiments/paper.py --run runs/NAME --ledger paper/book.db --broker sim --through 2025-11-01   # continue
    python experiments/paper.py --run runs/NAME --ledger paper/book.db --resume-buys                       # lift a halt
    APCA_API_KEY_ID=... APCA_API_SECRET_KEY=... python experiments/paper.py --run runs/NAME --data-dir D \\
        --ledger live.db --broker alpaca --equity broker --through 2026-11-24 --new   # from the account's cash

Each cycle (one SQLite transaction) reconciles yesterday's orders, updates the book, decides and sizes tomorrow's
orders with the transition's own sizing, records and submits them. Re-running a recorded day changes nothing.
A ledger or broker problem ends the script with one line naming the file, symbol or order.
Writes paper_report.txt, paper_daily.csv, paper_summary.json and equity.png beside the ledger (or into --out).
"""

CONTROLS, PAPER = Controls(), PaperConfig()
RETRAIN = {f.name: f.default for f in dataclasses.fields(RetrainPolicy)}
"""The defaults of the flags: the dataclasses' own."""
UNSET = object()
"""--probe-max-outlay not given (its "none" means no absolute cap)."""


def _equity(text: str) -> float | str:
    if text == "broker":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'broker', got {text!r}") from None


def probe_limits(args: argparse.Namespace) -> dict[str, float | None]:
    """`PaperConfig`'s probe fields from the flags: off unless --probe, --probe-notional or --probe-max-outlay is
    given; a cap not given takes its default (`ndjax.probe`)."""
    if not (args.probe or args.probe_notional is not None or args.probe_max_outlay is not UNSET):
        return {}
    return {"probe_notional": PROBE_FRACTION if args.probe_notional is None else args.probe_notional,
            "probe_max_outlay": PROBE_MAX_OUTLAY if args.probe_max_outlay is UNSET else args.probe_max_outlay}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="paper.py", description=USAGE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_flags(p, run_help=" (the first champion)")
    p.add_argument("--ledger", required=True, help="SQLite ledger file (a new one needs --new)")
    p.add_argument("--new", action="store_true", help="start a new ledger at --ledger (a missing or empty file)")
    p.add_argument("--broker", choices=["sim", "alpaca"], default="sim")
    p.add_argument("--equity", type=_equity, help=f"starting equity of a new ledger (default {DEFAULT_EQUITY:g}); an "
                   "existing ledger keeps its own and refuses another. 'broker': start from the real broker's cash")
    p.add_argument("--start", help="first day of a new ledger (default: continue from the ledger's last day); on an "
                                   "existing ledger it must be the ledger's first day")
    p.add_argument("--through", help="last day to run (default: the data's last row)")
    c = p.add_argument_group("risk controls")
    c.add_argument("--ramp-days", type=int, default=CONTROLS.ramp_days,
                   help="days to reach full size (0 = from day one; default %(default)s)")
    c.add_argument("--ramp-drawdown", type=float, default=CONTROLS.ramp_drawdown,
                   help="the ramp grows only while the drawdown is below this (default %(default)s)")
    c.add_argument("--halt-drawdown", type=float, default=CONTROLS.halt_drawdown,
                   help="stop new buys at this drawdown (default %(default)s; 1.0 = never)")
    c.add_argument("--resume-buys", action="store_true", help="lift the kill switch, then run")
    c.add_argument("--probe", action="store_true",
                   help=f"probe mode: after a losing trade a symbol's position is held to min({PROBE_FRACTION:g} "
                        f"of equity, {PROBE_MAX_OUTLAY:g}) (the two flags below change them; default: off)")
    c.add_argument("--probe-notional", type=float, default=PAPER.probe_notional,
                   help=f"probe mode's cap as a fraction of equity (turns probe mode on; default {PROBE_FRACTION:g})")
    c.add_argument("--probe-max-outlay", type=parse_max_outlay, default=UNSET,
                   help=f"probe mode's absolute cap in the account's currency, or 'none' (turns probe mode on; "
                        f"default {PROBE_MAX_OUTLAY:g})")
    c.add_argument("--whole-shares", action="store_true", default=PAPER.whole_shares,
                   help="round stock quantities down to whole shares")
    c.add_argument("--max-stale-days", type=float, default=PAPER.max_stale_days,
                   help="skip symbols whose last bar is older than this many calendar days (default %(default)s)")
    r = p.add_argument_group("retraining")
    r.add_argument("--retrain-every", type=int, help="fine-tune a challenger every K cycles (default: never)")
    r.add_argument("--retrain-steps", type=int, default=RETRAIN["steps"], help="updates per challenger "
                                                                                "(default %(default)s)")
    r.add_argument("--retrain-val-days", type=int, default=RETRAIN["val_days"],
                   help="recent rows both models are judged on (default %(default)s)")
    a = p.add_argument_group("alpaca")
    a.add_argument("--live", action="store_true", help="trade the real account (default: Alpaca's paper endpoint)")
    a.add_argument("--alpaca-url", help="another endpoint (a local test server)")
    a.add_argument("--alpaca-crypto-fee", type=float, default=ALPACA_CRYPTO_MAKER_FEE,
                   help="your crypto fee tier (default %(default)s, the first maker tier); Alpaca takes it in the "
                        "asset received, so a wrong rate shows as positions out of sync")
    a.add_argument("--status-polls", type=int, default=PAPER.status_polls,
                   help="reads of an order being cancelled before it is left for the next cycle (default %(default)s)")
    a.add_argument("--status-wait", type=float, default=PAPER.status_wait,
                   help="seconds between those reads (default %(default)s)")
    p.add_argument("--out", help="folder for the report (default: the ledger's folder)")
    p.add_argument("--no-rows", action="store_true", help="report only the summary blocks")
    return p.parse_args(argv)


class Interrupted(NdjaxError):
    """The command was interrupted (Ctrl-C); the message says where the ledger stands."""


def paper_command(argv: list[str] | None = None) -> PaperResult:
    """`experiments/paper.py` with the command line `argv`: the cycles, then the report printed (stdout) and a line
    of what was recorded (stderr). Library errors propagate (the scripts print them in one line); an interrupt is
    an `Interrupted` naming the ledger's last day. Returns the `PaperResult`."""
    args = parse_args(argv)
    session = None
    try:
        retrain = (RetrainPolicy(every=args.retrain_every, steps=args.retrain_steps, val_days=args.retrain_val_days,
                                 data_dir=args.data_dir) if args.retrain_every else None)
        config = PaperConfig(controls=Controls(args.ramp_days, args.ramp_drawdown, args.halt_drawdown),
                             **probe_limits(args), whole_shares=args.whole_shares,
                             max_stale_days=args.max_stale_days, retrain=retrain, status_polls=args.status_polls,
                             status_wait=args.status_wait)
        alpaca = {"live": args.live, "url": args.alpaca_url, "crypto_fee": args.alpaca_crypto_fee}
        adopt = args.equity == "broker"
        session = open_session(args.run, args.ledger, data_dir=args.data_dir, symbols=parse_symbols(args.symbols),
                               broker=args.broker, equity=None if adopt else args.equity, adopt_account=adopt,
                               config=config, out=args.out, alpaca=alpaca if args.broker == "alpaca" else None,
                               new=args.new, repair=args.repair)
        if args.resume_buys:
            print(f"buys resumed from {session.resume_buys()}", file=sys.stderr)
        result = paper_trade(session, start=args.start, through=args.through, rows=not args.no_rows)
    except KeyboardInterrupt:
        if session is None:
            raise Interrupted("interrupted before the ledger was opened; it is unchanged") from None
        raise Interrupted(f"interrupted; the ledger is at {session.ledger.last_date() or 'no day yet'}") from None
    if result.text:
        print(result.text)
    print(f"\n{result.recorded} day(s) recorded; the ledger ends on {result.last_date}; wrote {result.out}/"
          "paper_report.txt, paper_daily.csv, paper_summary.json, equity.png", file=sys.stderr)
    return result
