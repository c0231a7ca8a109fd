"""The package layout is a contract: layers import downwards only, and each file stays small.

The order below is the one ``docs/architecture.md`` draws; a new module lands in a layer, and a
new layer is added here and there in the same change.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

PACKAGE = REPO_ROOT / "monitor"
#: Shared by every layer: the config schema and loader, the types that cross boundaries, the
#: domain's words, and crash-safe file writes.
FOUNDATION = (
    "monitor",
    "monitor.settings",
    "monitor.settings_base",
    "monitor.settings_model",
    "monitor.settings_loader",
    "monitor.safe_yaml",
    "monitor.redaction",
    "monitor.events",
    "monitor.snapshot",
    "monitor.vocabulary",
    "monitor.atomic",
)
#: Lowest first: a module may import its own layer and the ones before it, never after.
LAYERS: tuple[tuple[str, ...], ...] = (
    FOUNDATION,
    ("monitor.stats",),
    ("monitor.reference",),
    ("monitor.state",),
    ("monitor.serve",),
    ("monitor.ingest",),
    ("monitor.alerting",),
    ("monitor.persistence",),
    ("monitor.group",),
    ("monitor.app",),
    ("monitor.devkit",),
    ("monitor.cli",),
)
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _rank(module: str) -> int:
    best = -1
    best_len = -1
    for rank, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = rank, len(prefix)
    if best < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and the architecture doc")
    return best


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """The ``monitor`` modules ``path`` imports (lazy ones too unless ``top_level_only``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "monitor":
                names.update(f"monitor.{a.name}" for a in node.names)
            elif node.module.startswith("monitor."):
                names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("monitor"))
    known = _modules()
    # ``from monitor import __version__`` names an attribute of the package, not a module
    return {n if n in known else n.rsplit(".", 1)[0] for n in names}


@pytest.mark.parametrize("module", sorted(_modules()))
def test_imports_point_down_the_layers(module: str) -> None:
    path = _modules()[module]
    own = _rank(module)
    upward = sorted(m for m in _imports(path, top_level_only=False) if _rank(m) > own)
    assert not upward, f"{module} (layer {own}) imports a higher layer: {upward}"


def test_no_import_cycles() -> None:
    graph = {m: _imports(p, top_level_only=True) - {m} for m, p in _modules().items()}
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_only_the_kafka_adapters_import_kafka() -> None:
    """Production code reaches Kafka through one adapter per client, and group mode's state
    topic through its own module (kafka-python only); the devkit produces demo traffic.

    The dead-letter writer sits beside the adapters and imports ``kafka.errors`` only, to tell a
    permanent produce error from a transient one; the producer it writes through is the
    adapter's. The confluent adapter (and its dead-letter producer wrapper) are the only modules
    that import ``confluent_kafka``, and of ``kafka`` only its errors, to hand the writer
    librdkafka's errors as those classes.
    """
    importers = []
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            if any(n == "kafka" or n.startswith("kafka.") for n in names):
                importers.append(module)
    outside = {m for m in importers if not m.startswith("monitor.devkit.")}
    assert outside == {
        "monitor.ingest.kafka_source",
        "monitor.ingest.confluent_producer",
        "monitor.ingest.dead_letter",
        "monitor.group.topic",
    }, sorted(outside)
    for name in ("dead_letter", "confluent_source", "confluent_producer"):
        tree = ast.parse((PACKAGE / "ingest" / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("kafka") for a in node.names), "errors only"
            elif isinstance(node, ast.ImportFrom) and node.module and node.module[:6] == "kafka.":
                assert node.module == "kafka.errors", f"{name} imports {node.module}"
    confluent = set()
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            if any(n.split(".")[0] == "confluent_kafka" for n in names):
                confluent.add(module)
    assert confluent == {
        "monitor.ingest.confluent_source",
        "monitor.ingest.confluent_producer",
    }, sorted(confluent)


def test_every_folder_says_its_job_and_every_file_stays_small() -> None:
    for init in PACKAGE.rglob("__init__.py"):
        assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), init
    too_long = {
        str(p.relative_to(REPO_ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not too_long, f"split these by concern (over {MAX_LINES} lines): {too_long}"
