"""Files a run leaves behind: atomic text and JSON, the daily CSV of a path, and the whole report of a period
(text, `equity.png`, daily CSV, summary JSON) written in one call for training and evaluation alike."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ndjax.dynamics import StepInfo
from ndjax.files import atomic_write_text  # noqa: F401 (the writers' atomic write; re-exported)
from ndjax.metrics import DailyPath, PathStats, drawdown, summary
from ndjax.report.plots import plot_equity
from ndjax.report.tables import format_comparison, format_report

DAILY_COLUMNS = ("date", "equity", "cash", "return", "leverage", "leverage_cost", "fees", "traded_notional",
                 "margin_call", "forced_notional")


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.generic, np.ndarray)) or hasattr(x, "__array__"):
        return np.asarray(x).tolist()
    if isinstance(x, PathStats):
        return x.as_dict()
    return str(x)


def json_text(obj: Any) -> str:
    """`obj` as the indented JSON text `write_json` writes (NumPy and JAX values become lists)."""
    return json.dumps(obj, indent=2, default=_json_default) + "\n"


def write_json(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented JSON, atomically (NumPy and JAX values become lists)."""
    return atomic_write_text(path, json_text(obj))


def write_rows(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> Path:
    """Write dict rows as CSV (columns: `columns`, or the first row's keys)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(columns or (rows[0] if rows else []))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def daily_rows(dates: Sequence[Any], infos: DailyPath | StepInfo) -> list[dict[str, Any]]:
    """One row per bar of one path (`DAILY_COLUMNS`), numbers at full precision."""
    fields = {"equity": "equity", "cash": "cash", "return": "returns", "leverage": "leverage",
              "leverage_cost": "leverage_cost", "fees": "fees", "traded_notional": "traded_notional",
              "margin_call": "margin_call", "forced_notional": "forced_notional"}
    cols = {name: np.asarray(getattr(infos, field), np.float64).tolist() for name, field in fields.items()}
    rows = []
    for i, d in enumerate(dates):
        row = {"date": str(d)[:10], **{name: repr(values[i]) for name, values in cols.items()}}
        row["margin_call"] = int(cols["margin_call"][i])
        rows.append(row)
    return rows


def write_period_report(out: str | Path, prefix: str, title: Sequence[str], dates: Sequence[Any],
                        paths: Mapping[str, DailyPath | StepInfo], periods_per_year: float, *, rows: bool = True,
                        extra_sections: Sequence[str] = (), extra_stats: Mapping[str, PathStats] | None = None,
                        summary_extra: Mapping[str, Any] | None = None) -> tuple[str, dict[str, PathStats]]:
    """The report of one period for named paths (the first is reported in full, the others by their summary):
    `{prefix}_report.txt`, `{prefix}_daily.csv` (first path), `{prefix}_summary.json` and `equity.png`.

    `dates (T,)`, each `paths[name]` unbatched with time on axis 0: a simulated `StepInfo` path or a `DailyPath`
    (the series the report reads; a `StepInfo` path is read through `DailyPath.from_steps`). `extra_sections`
    (text lines) go before the closing comparison table, which also lists `extra_stats` (paths over other bars,
    such as a lag check).
    Returns the report text and the stats by name.
    """
    out = Path(out)
    paths = {name: DailyPath.from_steps(p) for name, p in paths.items()}
    names = list(paths)
    main = paths[names[0]]
    stats = {name: summary(p, periods_per_year) for name, p in paths.items()}
    sections = list(title) + ["", format_report(dates, main, periods_per_year, rows=rows)]
    for name in names[1:]:
        sections += ["", "-" * 72, name, format_report(dates, paths[name], periods_per_year, rows=False)]
    stats.update(extra_stats or {})
    sections += list(extra_sections) + ["", "-" * 72, format_comparison(stats)]
    text = "\n".join(sections)
    atomic_write_text(out / f"{prefix}_report.txt", text + "\n")
    write_rows(out / f"{prefix}_daily.csv", daily_rows(dates, main), DAILY_COLUMNS)
    write_json(out / f"{prefix}_summary.json",
               dict(summary_extra or {}, period=[str(dates[0])[:10], str(dates[-1])[:10]],
                    summary={k: v.as_dict() for k, v in stats.items()}))
    plot_equity(out / "equity.png", dates, {name: np.asarray(p.equity) for name, p in paths.items()},
                np.asarray(drawdown(main.equity, main.prev_equity[0])), np.asarray(main.leverage),
                np.asarray(main.margin_call))
    return text, stats
