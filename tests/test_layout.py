"""The package's shape: imports flow one way through the layers of docs/architecture.md (deferred imports count),
no module is over 400 lines, and library code never ends the process."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ndjax"

LAYERS: dict[str, int] = {
    # the transition and what it is made of
    "ndjax.assets": 0, "ndjax.probe": 0, "ndjax.dynamics": 1,
    # data: calendar -> container -> loading, features, synthetic markets, splits -> sources, device arrays
    "ndjax.data.calendar": 2, "ndjax.data.market": 3, "ndjax.data.loading": 4, "ndjax.data.features": 4,
    "ndjax.data.synthetic": 4, "ndjax.data.splits": 4, "ndjax.data.source": 5, "ndjax.data.arrays": 5,
    # policy -> simulation -> objectives -> statistics -> reference strategies and reports
    "ndjax.policy": 6, "ndjax.targets": 7, "ndjax.sim": 7, "ndjax.loss": 8, "ndjax.metrics": 9, "ndjax.baselines": 10,
    "ndjax.oracle": 10,
    "ndjax.report.plots": 10, "ndjax.report.tables": 11, "ndjax.report.writers": 12,
    # training
    "ndjax.train.config": 13, "ndjax.train.checkpoints": 13, "ndjax.train.trainer": 14, "ndjax.train.sharding": 14,
    "ndjax.train.loop": 15, "ndjax.train.sweep": 15,
    # runs: the folder, evaluation, planning, the main job
    "ndjax.runs.folder": 16, "ndjax.runs.positions": 17, "ndjax.runs.evaluate": 17, "ndjax.runs.plan": 18,
    "ndjax.runs.job": 18, "ndjax.runs.folds": 19,
    # paper trading: the broker interface and controls -> ledger, brokers -> the cycle, its report -> retraining
    "ndjax.paper.broker": 19, "ndjax.paper.controls": 19, "ndjax.paper.ledger": 20, "ndjax.paper.simulated": 20,
    "ndjax.paper.alpaca": 20, "ndjax.paper.cycle": 21, "ndjax.paper.report": 21, "ndjax.paper.retrain": 22,
    "ndjax.paper.trade": 22,
    # flags for the scripts in experiments/
    "ndjax.cli": 19,
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
