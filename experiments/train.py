"""Train a policy through the transition, then simulate it on held-out days beside two baselines.

By default: the built-in synthetic market (4 stocks on the NYSE calendar, 2 crypto, planted momentum 0.3), an MLP
policy (`--model transformer` for the causal transformer), `ste` fills for training, `hard` fills for
validation and the test report.

    python experiments/train.py                                   # synthetic market
    python experiments/train.py --data-dir ../shared/data/daily --train-end 2024-06-30 --val-end 2025-06-30
    python experiments/train.py --resume --out runs/NAME          # continue a killed run
    python experiments/train.py --init-from runs/OLD --data-dir D  # fine-tune on newer data

Writes `--out` (default `runs/<timestamp>`): config.json, metrics.jsonl, checkpoints/,
report.txt, equity.png.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import jax
import numpy as np

from ndjax.train import checkpoints as checkpoint
from ndjax.cli import add_data_args, add_model_args, load_market, prepare, split_rows, train_config
from ndjax.runs.evaluate import held_out
from ndjax.data.features import FEATURE_NAMES
from ndjax.policy import create
from ndjax.train.loop import fit
from ndjax.report.plots import plot_equity
from ndjax.sim import drawdown, format_comparison, format_report, summary
from ndjax.train.trainer import HParams, context_split, make_train, market_params


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p, synthetic_days=1100)
    m = add_model_args(p, d_model=32, window=96, batch=16, steps=400, eval_every=50)
    m.add_argument("--lr", type=float, default=3e-3)
    m.add_argument("--fill-temperature", type=float, default=5e-3,
                   help="soft-fill scale for training gradients; ste forward values stay exactly hard")
    m.add_argument("--return-weight", type=float, default=0.08)
    k = p.add_argument_group("market rules")
    k.add_argument("--stock-leverage", type=float, default=2.0)
    k.add_argument("--crypto-leverage", type=float, default=1.0)
    k.add_argument("--maker-fee", type=float, default=0.0008)
    k.add_argument("--leverage-rate", type=float, default=0.065)
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", help="run folder (default runs/<timestamp>)")
    r.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    r.add_argument("--init-from", help="run folder whose best checkpoint initialises the policy")
    r.add_argument("--keep", type=int, default=3, help="best checkpoints to keep")
    r.add_argument("--no-rows", action="store_true", help="report only the summary blocks")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    t_start = time.perf_counter()
    out = Path(args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}")
    if args.resume and not (out / "checkpoints" / "latest.npz").is_file():
        raise SystemExit(f"--resume: no checkpoint at {out / 'checkpoints' / 'latest.npz'}")
    out.mkdir(parents=True, exist_ok=True)

    market = load_market(args, args.seed)
    a, b = split_rows(market, args.train_end, args.val_end)
    normalizer, arrays = prepare(market, a)
    P = market.periods_per_year
    cfg = train_config(args, P)
    policy_cfg = cfg.policy
    hp = HParams(learning_rate=args.lr, return_weight=args.return_weight, maker_fee=args.maker_fee,
                 stock_max_leverage=args.stock_leverage, crypto_max_leverage=args.crypto_leverage,
                 leverage_fee_rate=args.leverage_rate, fill_temperature=args.fill_temperature)
    L = policy_cfg.lookback
    meta = {
        "symbols": list(market.symbols), "is_crypto": market.is_crypto.tolist(), "periods_per_year": P,
        "split": {"train": [str(market.dates[0]), str(market.dates[a - 1])],
                  "val": [str(market.dates[a]), str(market.dates[b - 1])],
                  "test": [str(market.dates[b]), str(market.dates[-1])]},
        "data": args.data_dir or f"synthetic(seed={args.seed}, days={args.synthetic_days}, signal={args.signal})",
        "config": asdict(cfg), "hparams": {k: float(v) for k, v in asdict(hp).items()},
        "normalizer": normalizer.to_dict(), "feature_names": list(FEATURE_NAMES),
    }
    checkpoint.write_json(out / "config.json", dict(meta, args=vars(args)))
    print(f"ndjax: {len(market.symbols)} assets ({int(market.is_crypto.sum())} crypto), {market.n_days} rows "
          f"{market.dates[0]} .. {market.dates[-1]}; train {meta['split']['train']}, val {meta['split']['val']}, "
          f"test {meta['split']['test']}; run folder {out}", file=sys.stderr)

    trainer = make_train(cfg, arrays.rows(0, a), context_split(arrays, a, b, L))
    init_params = None
    if args.init_from:
        source = checkpoint.CheckpointManager(Path(args.init_from) / "checkpoints")
        init_params, _ = checkpoint.load(source.best_path(), create(policy_cfg, jax.random.PRNGKey(0))[1])
    t_train = time.perf_counter()
    fit(trainer, cfg, hp, jax.random.PRNGKey(args.seed), out, meta=meta, resume=args.resume,
        init_params=init_params, keep=args.keep)
    t_train = time.perf_counter() - t_train

    manager = checkpoint.CheckpointManager(out / "checkpoints")
    best, best_meta = checkpoint.load(manager.best_path(), create(policy_cfg, jax.random.PRNGKey(0))[1])
    if b < L:
        raise SystemExit(f"date split: the test starts at row {b}, before {L} rows of encoder context exist")
    mp = market_params(hp, arrays.is_crypto, "hard", args.interest, cfg.margin_call)
    runs = held_out(trainer.graphdef, best, arrays, b, L, mp)
    infos, baseline = runs["policy"], {k: runs[k] for k in ("buy_and_hold", "cash")}
    dates = market.dates[b + 1:]
    sections = [f"Policy (best checkpoint, step {best_meta['step']}, validation score {best_meta['score']:.3f}), "
                f"held-out test {dates[0]} .. {dates[-1]}, hard fills", "",
                format_report(dates, infos, P, rows=not args.no_rows)]
    for name, label in (("buy_and_hold", "Equal-weight buy and hold (1x)"), ("cash", "All cash")):
        sections += ["", "-" * 72, label, format_report(dates, baseline[name], P, rows=False)]
    stats = {name: summary(v, P) for name, v in runs.items()}
    table = ["", "-" * 72, format_comparison(stats)]
    report = "\n".join(sections + table)
    (out / "report.txt").write_text(report + "\n")
    plot_equity(out / "equity.png", dates, {"policy": np.asarray(infos.equity),
                                           "buy and hold": np.asarray(baseline["buy_and_hold"].equity),
                                           "cash": np.asarray(baseline["cash"].equity)},
                np.asarray(drawdown(infos.equity, infos.prev_equity[0])), np.asarray(infos.leverage),
                np.asarray(infos.margin_call))
    print(report)
    print(f"\nTraining {t_train:.1f} s, total {time.perf_counter() - t_start:.1f} s; wrote {out}/report.txt, "
          f"equity.png, metrics.jsonl, checkpoints/")


if __name__ == "__main__":
    main()
