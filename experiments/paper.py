"""Paper trading on a ledger: replay history as if live with the simulated broker, or run the day's cycle against
Alpaca's paper (or, with --live, real) account. The command is `ndjax.paper.command.paper_command` (which
experiments/daily.py calls too); `--help` shows the usage and examples."""

from __future__ import annotations

from ndjax.errors import NdjaxError, one_line
from ndjax.paper.command import paper_command, parse_args, probe_limits  # noqa: F401 - the parser, for tests
from ndjax.paper.trade import PaperResult


def main(argv: list[str] | None = None) -> PaperResult:
    """`ndjax.paper.command.paper_command`, its errors as a one-line exit."""
    try:
        return paper_command(argv)
    except NdjaxError as e:
        raise SystemExit(one_line("paper", e)) from None


if __name__ == "__main__":
    main()
