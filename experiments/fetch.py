"""Bring a folder of daily CSVs (one per symbol, as `load_daily` reads them) up to date with final bars.

    APCA_API_KEY_ID=... APCA_API_SECRET_KEY=... python experiments/fetch.py --data-dir live/data \\
        --symbols AAPL,MSFT,BTC-USD
    python experiments/fetch.py --data-dir live/data                     # the folder's symbols, to the last final day
    python experiments/fetch.py --data-dir replay --source history/ --through 2026-06-30 --now 2026-07-01T00:00Z

A stock's bar is written after its session's close (early closes included) plus the settle delay, a crypto bar
after its UTC day; the last --refetch bars are fetched again and corrected values rewritten; a changed history
(split, dividend adjustment) rewrites the file. Every correction goes to stderr and to D/fetch_log.jsonl. A bad
bar is refused naming the symbol and date, and nothing is written for that symbol; the others still update.
Exits 1 if any symbol failed.
"""

from __future__ import annotations

import argparse
import sys

from ndjax.cli import parse_symbols
from ndjax.errors import NdjaxError, one_line
from ndjax.feeds.options import add_fetch_args, fetch_from_args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="the folder of CSVs to update (created if missing)")
    p.add_argument("--symbols", help="comma list (default: the folder's CSVs)")
    add_fetch_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None):
    args = parse_args(argv)
    try:
        results = fetch_from_args(args, parse_symbols(args.symbols), lambda line: print(line, file=sys.stderr))
    except NdjaxError as e:  # FeedError, ConfigError (a flag), DataError: one line; anything else keeps its traceback
        raise SystemExit(one_line("fetch", e)) from None
    failed = [r for r in results if r.error]
    if failed:
        raise SystemExit("fetch: " + "; ".join(r.describe() for r in failed))
    return results


if __name__ == "__main__":
    main()
