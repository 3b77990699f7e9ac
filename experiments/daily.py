"""The one command a trader schedules: fetch the day's final bars, run the paper (or live) cycle, write the report.

    APCA_API_KEY_ID=... APCA_API_SECRET_KEY=... python experiments/daily.py --data-dir live/data \\
        --symbols AAPL,MSFT,BTC-USD --ledger live/book.db -- --run runs/NAME --broker alpaca --start 2026-12-01
    python experiments/daily.py --data-dir live/data --ledger live/book.db --status   # exit 2 when stale

It knows the calendar: it fetches (experiments/fetch.py's flags), then cycles through the last day whose bars are
final for every asset class held (stocks: the session's close plus the settle delay, early closes included;
crypto: the UTC day), and only if that brings a bar the ledger has not recorded. On a holiday, or run twice, it
does nothing and says so. A fetch failure stops it before the cycle (exit 1). Flags after `--` go to
experiments/paper.py (`ndjax.paper.command.paper_command`: --run, --broker, --equity, --start for a new ledger, the
risk controls, ...); --data-dir, --ledger, --symbols and --through are passed on. See docs/live.md for the systemd
timer and the crontab line.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta

from ndjax.cli import parse_symbols
from ndjax.errors import NdjaxError, one_line
from ndjax.feeds.loop import live_day
from ndjax.feeds.options import add_fetch_args, feed_from_args
from ndjax.feeds.status import STALE_SESSIONS, loop_status
from ndjax.paper.command import paper_command


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    paper = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="the folder of daily CSVs the loop keeps current")
    p.add_argument("--symbols", help="comma list (default: the folder's CSVs)")
    p.add_argument("--ledger", required=True, help="the SQLite ledger the cycle writes")
    p.add_argument("--status", action="store_true", help="print the loop's health and exit (2 when stale)")
    p.add_argument("--stale-sessions", type=int, default=STALE_SESSIONS,
                   help="cycle days due and not run before --status calls the loop stale (default %(default)s)")
    p.add_argument("--accept-rewrite", default="", help="comma list of symbols whose split-like history rewrite "
                   "you have seen to (the loop stops on one while the ledger holds the symbol)")
    add_fetch_args(p)
    return p.parse_args(own), paper


def main(argv: list[str] | None = None):
    args, paper = parse_args(argv)
    symbols = parse_symbols(args.symbols)
    symbols = None if symbols == "all" else symbols
    now = args.now or datetime.now(UTC)
    settle = timedelta(minutes=args.settle_minutes)
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    try:
        if args.status:
            text, stale = loop_status(args.ledger, args.data_dir, symbols, now, settle=settle,
                                      stale_after=args.stale_sessions)
            print(text)
            if stale:
                raise SystemExit(2)
            return text
        passed = ["--data-dir", args.data_dir, "--ledger", args.ledger,
                  "--symbols", ",".join(symbols) if symbols else "all"]
        outcome = live_day(args.data_dir, symbols, feed_from_args(args), args.ledger,
                           lambda day: paper_command([*paper, *passed, "--through", day]), now, settle=settle,
                           through=args.through, log=log, refetch=args.refetch, start=args.history_start,
                           accept=[s.strip() for s in args.accept_rewrite.split(",") if s.strip()])
    except NdjaxError as e:  # FeedError, ConfigError (a flag), DataError: one line; anything else keeps its traceback
        raise SystemExit(one_line("daily", e)) from None
    return outcome


if __name__ == "__main__":
    main()
