"""The package's shape: imports flow one way through the layers of docs/architecture.md (deferred imports count),
no module is over 400 lines, and library code never ends the process."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ndjax"

LAYERS: dict[str, int] = {
    # the library's errors and atomic files and locks, then the transition and what it is made of
    "ndjax.errors": -1, "ndjax.files": -1,
    "ndjax.assets": 0, "ndjax.market_rules": 0, "ndjax.probe": 0, "ndjax.dynamics": 1,
    # running sums of a path: what one step adds, PathStats from the sums
    "ndjax.stats_scan": 2,
    # data: calendar, the move bound -> container -> loading, features, synthetic markets, splits -> sources, arrays
    "ndjax.data.calendar": 2, "ndjax.data.plausible": 2,
    "ndjax.data.market": 3, "ndjax.data.loading": 4, "ndjax.data.features": 4,
    "ndjax.data.synthetic": 4, "ndjax.data.splits": 4, "ndjax.data.source": 5, "ndjax.data.arrays": 5,
    # what a policy sees -> target weights to orders -> the policy -> its seed ensembles, simulation -> objectives ->
    # statistics
    "ndjax.observation": 6, "ndjax.targets": 7, "ndjax.policy": 8, "ndjax.ensemble": 9, "ndjax.sim": 9,
    "ndjax.loss": 10,
    "ndjax.metrics": 11,
    # reference strategies and reports
    "ndjax.baselines": 12, "ndjax.classical": 12, "ndjax.oracle": 12, "ndjax.report.plots": 12,
    "ndjax.report.tables": 13,
    "ndjax.report.writers": 14,
    # training
    "ndjax.train.config": 15, "ndjax.train.checkpoints": 15, "ndjax.train.trainer": 16, "ndjax.train.sharding": 16,
    "ndjax.train.loop": 17, "ndjax.train.sweep": 17,
    # runs: the folder, evaluation, planning, the main job, walk-forward folds
    "ndjax.runs.folder": 18, "ndjax.runs.positions": 19, "ndjax.runs.evaluate": 19, "ndjax.runs.sweeps": 19,
    "ndjax.runs.plan": 20,
    "ndjax.runs.job": 20, "ndjax.runs.chain": 11, "ndjax.runs.folds": 21,
    # paper trading: the broker interface and controls -> ledger, brokers -> posted fees -> the cycle, its report ->
    # retraining, the end-to-end entry point
    "ndjax.paper.broker": 21, "ndjax.paper.controls": 21, "ndjax.paper.ledger": 22, "ndjax.paper.simulated": 22,
    "ndjax.paper.alpaca": 22, "ndjax.paper.postings": 23, "ndjax.paper.cycle": 24, "ndjax.paper.report": 24,
    "ndjax.paper.retrain": 25, "ndjax.paper.trade": 25, "ndjax.paper.command": 26,
    # flags for the scripts in experiments/ (and the flag names the main job's errors give)
    "ndjax.cli": 6,
    # the live loop's daily bars: a bar frame and when a bar is final -> the folder's files -> updating it from a
    # feed -> the CSV and Alpaca feeds -> the fetch flags -> the daily loop and its health
    "ndjax.feeds.bars": 3, "ndjax.feeds.final": 3, "ndjax.feeds.files": 4, "ndjax.feeds.update": 5,
    "ndjax.feeds.csvfolder": 6, "ndjax.feeds.alpaca": 6, "ndjax.feeds.options": 7, "ndjax.feeds.loop": 23,
    "ndjax.feeds.status": 22,
}
"""Each module's layer: a module imports only from strictly lower layers."""


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(path: Path) -> set[str]:
    """Every ndjax module imported anywhere in the file, deferred imports included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ndjax"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("ndjax"))
    return found


def test_every_module_has_a_layer_and_imports_only_lower_layers():
    modules = _modules()
    packages = {m for m in modules if (PACKAGE.parent / m.replace(".", "/") / "__init__.py").exists()}
    unplaced = sorted(set(modules) - set(LAYERS) - packages)
    assert not unplaced, f"add these modules to LAYERS (and docs/architecture.md): {unplaced}"
    wrong = []
    for name, path in modules.items():
        if name in packages:
            continue
        for target in _imports(path) & set(modules):
            if target not in packages and LAYERS[target] >= LAYERS[name]:
                wrong.append(f"{name} (layer {LAYERS[name]}) imports {target} (layer {LAYERS[target]})")
    assert not wrong, "\n".join(wrong)


def test_no_module_over_400_lines():
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > 400}
    assert not long, long


def test_library_code_does_not_exit():
    exits = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and "SystemExit" in ast.unparse(node):
                exits.append(name)
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("sys.exit", "exit", "quit", "os._exit"):
                exits.append(name)
    assert not exits, exits


def test_docs_cite_files_that_exist():
    """Every `tests/…`, `ndjax/…`, `experiments/…` or `benchmarks/…` path named in the README and docs/ exists."""
    root = PACKAGE.parent
    cited = set()
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        cited |= {(doc.name, m) for m in re.findall(r"\b((?:tests|ndjax|experiments|benchmarks)/[\w/.-]*\.(?:py|md))",
                                                    doc.read_text())}
    missing = sorted(f"{doc}: {path}" for doc, path in cited if not (root / path).is_file())
    assert not missing, missing
