"""The fetch flags `experiments/fetch.py` and `experiments/daily.py` share, and the update they describe."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date, timedelta

from ndjax.feeds.alpaca import ADJUSTMENTS, FEEDS, AlpacaFeed
from ndjax.feeds.bars import BarFeed
from ndjax.feeds.final import DEFAULT_SETTLE
from ndjax.feeds.update import DEFAULT_START, REFETCH, SymbolUpdate, update_folder


def add_fetch_args(p: argparse.ArgumentParser) -> None:
    """Add the fetch flags to `p` (`--data-dir` and `--symbols` are the caller's)."""
    g = p.add_argument_group("fetching")
    g.add_argument("--source", default="alpaca", help="'alpaca' (market data through alpaca-py; keys from "
                   "APCA_API_KEY_ID / APCA_API_SECRET_KEY, base URL from APCA_API_DATA_URL) or a folder of CSVs to "
                   "replay (default %(default)s)")
    g.add_argument("--feed", choices=FEEDS, default="sip", help="Alpaca stock feed (default %(default)s: the "
                   "consolidated tape's official close and full volume; 'iex' if your plan refuses SIP)")
    g.add_argument("--adjustment", choices=ADJUSTMENTS, default="all", help="Alpaca price adjustment (default "
                   "%(default)s: splits and dividends, so returns carry no split jumps; a new adjustment rewrites the "
                   "history and is logged)")
    g.add_argument("--through", type=date.fromisoformat, help="last day to write (default: the last final day)")
    g.add_argument("--now", help="the time to judge finality at, ISO 8601 (default: the clock; for replays)")
    g.add_argument("--settle-minutes", type=float, default=DEFAULT_SETTLE.total_seconds() / 60,
                   help="wait after the close (crypto: after the UTC day) before a bar is final (default %(default)g)")
    g.add_argument("--refetch", type=int, default=REFETCH, help="bars re-fetched to catch corrections "
                                                                "(default %(default)s)")
    g.add_argument("--history-start", type=date.fromisoformat, default=DEFAULT_START,
                   help="first day fetched for a symbol without a file (default %(default)s)")
    g.add_argument("--retries", type=int, default=5, help="retries of a 429 or 5xx answer (default %(default)s)")
    g.add_argument("--retry-wait", type=float, default=1.0, help="first wait in seconds, doubling after each "
                                                                 "retry (default %(default)s)")


def feed_from_args(args: argparse.Namespace) -> BarFeed:
    """The feed the flags name."""
    if args.source == "alpaca":
        return AlpacaFeed(feed=args.feed, adjustment=args.adjustment, retries=args.retries,
                          retry_wait=args.retry_wait)
    from ndjax.feeds.csvfolder import CsvFolderFeed  # loads the data layer (and jax): only for replays

    return CsvFolderFeed(args.source)


def fetch_from_args(args: argparse.Namespace, symbols: list[str] | None,
                    log: Callable[[str], None]) -> list[SymbolUpdate]:
    """Update `args.data_dir` as the flags say (`symbols` None or "all": the folder's CSVs)."""
    chosen = None if symbols == "all" else symbols
    return update_folder(args.data_dir, chosen, feed_from_args(args), args.now, log=log, through=args.through,
                         settle=timedelta(minutes=args.settle_minutes), refetch=args.refetch,
                         start=args.history_start)
