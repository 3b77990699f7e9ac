"""The main job: train a policy through the transition, then simulate its best checkpoint on held-out days
beside two baselines (equal-weight buy and hold at 1x, all cash).

By default: the built-in synthetic market (4 stocks on the NYSE calendar, 2 crypto, planted momentum 0.3),
an MLP policy, `ste` fills for training, `hard` fills for validation and the test report.

    python experiments/train.py                                   # synthetic market
    python experiments/train.py --data-dir ../shared/data/daily --train-end 2024-06-30 --val-end 2025-06-30
    python experiments/train.py --resume --out runs/NAME          # continue a killed run
    python experiments/train.py --init-from runs/OLD --data-dir D  # fine-tune on newer data

Every flag of the market, model, training and hyperparameter groups is a field of `MarketSource`,
`PolicyConfig`, `TrainConfig` or `HParams` (same name, same default). Writes `--out` (default
`runs/<timestamp>`): config.json, metrics.jsonl, checkpoints/, test_report.txt, test_daily.csv,
test_summary.json, equity.png.
"""

from __future__ import annotations

import argparse
import sys
import time

from ndjax.cli import add_fields, from_fields, given_flags
from ndjax.data.source import MarketSource
from ndjax.errors import NdjaxError, one_line
from ndjax.policy import PolicyConfig
from ndjax.runs.job import JobSpec, interrupted_at, resume_spec, train_job
from ndjax.train.config import HParams, TrainConfig


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_fields(p.add_argument_group("market"), MarketSource)
    split = p.add_argument_group("date split")
    split.add_argument("--train-end", help="last training date (default: 60 %% of the rows)")
    split.add_argument("--val-end", help="last validation date (default: 80 %% of the rows); the rest is the test")
    add_fields(p.add_argument_group("policy"), PolicyConfig)
    add_fields(p.add_argument_group("training"), TrainConfig, skip={"policy", "periods_per_year"})
    add_fields(p.add_argument_group("hyperparameters (traced)"), HParams)
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=0, help="training seed")
    r.add_argument("--out", help="run folder (default runs/<timestamp>)")
    r.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint, as "
                   "configured in its config.json (a flag that differs from it is refused)")
    r.add_argument("--overwrite", action="store_true", help="delete the checkpoints of an earlier run in --out first")
    r.add_argument("--init-from", help="run folder whose best checkpoint initialises the policy")
    r.add_argument("--keep", type=int, default=3, help="best checkpoints to keep")
    r.add_argument("--no-rows", action="store_true", help="report only the summary blocks")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def spec_from_args(args: argparse.Namespace) -> JobSpec:
    train = from_fields(TrainConfig, args, policy=from_fields(PolicyConfig, args))
    return JobSpec(source=from_fields(MarketSource, args), train_end=args.train_end, val_end=args.val_end,
                   train=train, hparams=from_fields(HParams, args), seed=args.seed)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        spec = resume_spec(out, given_flags(parser, argv)) if args.resume else spec_from_args(args)
        result = train_job(spec, out, resume=args.resume, overwrite=args.overwrite,
                           init_from=args.init_from, keep=args.keep,
                           rows=not args.no_rows, log=lambda line: print(line, file=sys.stderr))
    except NdjaxError as e:
        raise SystemExit(one_line("train", e)) from None
    except KeyboardInterrupt:
        raise SystemExit(f"train: interrupted; {interrupted_at(out)}") from None
    print(result.text)
    print(f"\nTraining {result.train_seconds:.1f} s, total {result.total_seconds:.1f} s; wrote {out}/test_report.txt, "
          "equity.png, metrics.jsonl, checkpoints/")


if __name__ == "__main__":
    main()
