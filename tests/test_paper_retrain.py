"""Retraining live: a challenger fine-tuned every K cycles, promoted only if it beats the champion on the most
recent window, every decision in the ledger and the report."""

from __future__ import annotations

from ndjax.paper.controls import Controls
from ndjax.paper.cycle import PaperConfig
from ndjax.paper.retrain import RetrainPolicy
from ndjax.paper.trade import open_session, paper_trade

START = 130


def test_challengers_are_judged_and_recorded(run_dir, tmp_path):
    config = PaperConfig(controls=Controls(ramp_days=0, halt_drawdown=1.0),
                         retrain=RetrainPolicy(every=3, steps=2, val_days=20))
    session = open_session(run_dir, tmp_path / "r.db", equity=25_000.0, config=config, out=tmp_path)
    dates = session.market.dates
    result = paper_trade(session, start=str(dates[START]), through=str(dates[START + 7]), rows=False)
    models = session.ledger.models()
    assert models[0]["decision"] == "promoted" and models[0]["champion_score"] is None  # the first champion
    decisions = models[1:]
    assert [m["date"] for m in decisions] == [str(dates[START + 3]), str(dates[START + 6])]
    for m in decisions:
        assert m["decision"] == ("promoted" if m["challenger_score"] > m["champion_score"] else "rejected")
        assert (tmp_path / "models" / m["date"] / "config.json").is_file()
    traded = [d["model"] for d in session.ledger.days()]
    assert traded[0] == models[0]["id"] and traded[-1] == session.ledger.champion()["id"] == session.model_id
    assert "Models" in result.text and all(m["run"] in result.text for m in models)
    assert len(session.ledger.events("retrain")) == 2


def test_retraining_is_decided_between_cycles(run_dir, tmp_path):
    """The hook runs before a day's cycle (never on the first), outside its transaction: the day it promotes is
    recorded, reconciled and decided by the promoted model alone, and a failed day does not decide twice."""
    calls = []

    def hook(session, row):
        date = str(session.market.dates[row])
        calls.append((row, session.ledger.has_day(date), session.ledger.last_date()))
        if len(calls) == 2:
            model = session.ledger.record_model(date, str(session.run.path), session.run.step, "x", "promoted",
                                                0.0, 1.0)
            session.ledger.record_event(date, "retrain", "promoted by the test")
            session.use(session.run, model)

    config = PaperConfig(controls=Controls(ramp_days=0, halt_drawdown=1.0), retrain=hook)
    session = open_session(run_dir, tmp_path / "h.db", equity=25_000.0, config=config, out=tmp_path)
    dates = session.market.dates
    paper_trade(session, start=str(dates[START]), through=str(dates[START + 3]), rows=False)
    assert [(row, has) for row, has, _ in calls] == [(START + k, False) for k in (1, 2, 3)]
    assert [last for *_, last in calls] == [str(dates[START + k]) for k in (0, 1, 2)]
    models = session.ledger.models()
    traded = {d["date"]: d["model"] for d in session.ledger.days()}
    assert traded[str(dates[START + 1])] == models[0]["id"]
    assert traded[str(dates[START + 2])] == traded[str(dates[START + 3])] == models[1]["id"] == session.model_id
