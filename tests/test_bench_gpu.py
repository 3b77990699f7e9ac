"""The accelerator benchmark runs end to end at a tiny shape on the CPU and reports every cell."""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_bench_gpu_tiny_runs_every_cell(capsys):
    import bench_gpu

    rows = bench_gpu.main(["--tiny", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "device: cpu" in out and len(rows) == 4
    assert all(math.isfinite(r["steps_s"]) and r["steps_s"] > 0 for r in rows)
    assert rows[-1]["configs_s"] > 0 and "vmapped sweep" in rows[-1]["cell"]
