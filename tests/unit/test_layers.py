"""The architecture as a test: the layers are packages, and their imports point one way.

Every import of every module under ``actors/`` and ``supervisor/`` is read from its source (module
level, inside functions and under ``TYPE_CHECKING`` alike: a dependency is a dependency) and
checked against the rules of docs/architecture.md:

- ``actors.core`` imports nothing of the project but itself;
- ``actors.ml`` and ``actors.broker`` import only ``actors.core`` (and themselves; the emulator's
  replay reads candle files with ``actors.ml.candlefile``, the one documented exception);
- ``actors.runtime`` and ``actors.alerting`` import ``actors.core``, ``actors.broker`` and themselves
  (and the alert desk the runtime's journal and messages);
- a role (``actors.roles.<role>``) imports ``core``, ``ml``, ``broker``, ``runtime``, ``alerting`` and
  its own modules, never another role;
- the root (``supervisor``, but ``supervisor.offline`` and ``supervisor.cli``) imports ``runtime``,
  ``core``, ``broker.config``, ``alerting.config`` and itself, never a role, ``ml`` or a broker
  client (so ``tradehost run`` and ``ctl`` import neither pandas nor CatBoost in the root);
- ``supervisor.offline`` imports ``core``, ``ml``, ``broker``, ``runtime``'s journal and time, and
  the root's configuration loading; only ``supervisor.cli`` imports ``supervisor.offline``;
- no import circles among the project's modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _modules() -> dict[str, Path]:
    out = {}
    for top in ("actors", "supervisor"):
        for path in (ROOT / top).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module ``name`` refers to (a module, or the module a name is imported from)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> Iterator[str]:
    tree = ast.parse(MODULES[module].read_text())
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            names = [f"{base}.{a.name}" for a in node.names] if base else []
        else:
            continue
        for name in names:
            target = _resolve(name)
            if target is not None and target != module:
                yield target


GRAPH = {m: set(_imports(m)) for m in MODULES}


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "supervisor":
        if len(parts) > 1 and parts[1] == "offline":
            return "offline"
        cli = module in ("supervisor.cli", "supervisor.__main__") or module.startswith("supervisor.cli.")
        return "cli" if cli else "root"
    if len(parts) == 1:
        return "actors"
    if parts[1] == "roles" and len(parts) > 2:
        return f"role:{parts[2]}"
    return parts[1]


ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "ml": {"core", "ml"},
    "broker": {"core", "broker"},
    "runtime": {"core", "broker", "runtime"},
    "alerting": {"core", "broker", "runtime", "alerting"},
}
# Documented exceptions (docs/architecture.md): the emulator, a venue of its own in a separate
# process, replays candle files with the host's one reader.
EXCEPTIONS = {("actors.broker.emulator.replay", "actors.ml.candlefile")}
ROLE_MAY = {"core", "ml", "broker", "runtime", "alerting"}
ROOT_MAY_MODULES = ("actors.broker.config", "actors.alerting.config")
OFFLINE_MAY = {"core", "ml", "broker", "offline"}
OFFLINE_MAY_MODULES = (
    "actors.runtime.journal",
    "actors.runtime.journalrows",
    "actors.core.atomicfile",
    "actors.alerting.config",
    "actors.alerting.mailer",
    "supervisor.config",
    "supervisor.coreconfig",
    "supervisor.hostconfig",
)


def _problems() -> list[str]:
    out = []
    for module, targets in sorted(GRAPH.items()):
        layer = _layer(module)
        for target in sorted(targets):
            t_layer = _layer(target)
            if (module, target) in EXCEPTIONS:
                ok = True
            elif layer in ALLOWED:
                ok = t_layer in ALLOWED[layer]
            elif layer.startswith("role:"):
                ok = t_layer in ROLE_MAY or t_layer == layer
            elif layer == "root":
                ok = t_layer in ("core", "runtime", "root") or target.startswith(ROOT_MAY_MODULES)
            elif layer == "offline":
                ok = t_layer in OFFLINE_MAY or target.startswith(OFFLINE_MAY_MODULES)
            else:  # cli, the actors package: dispatch only
                ok = not t_layer.startswith("role:")
            if not ok:
                out.append(f"{module} ({layer}) imports {target} ({t_layer})")
    return out


def test_every_layer_imports_only_what_its_rule_allows() -> None:
    assert _problems() == []


def test_only_the_cli_imports_the_offline_commands() -> None:
    importers = {m for m, targets in GRAPH.items() for t in targets if _layer(t) == "offline"}
    assert {m for m in importers if _layer(m) != "offline"} <= {"supervisor.cli.offline"}


def _cycles() -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    return found


def test_there_is_no_import_circle() -> None:
    assert _cycles() == []


def test_every_roles_config_class_is_the_one_the_registry_names() -> None:
    from actors.runtime import registry

    for spec in registry.ROLES:
        assert registry.actor_class(spec.name).CONFIG is registry.config_class(spec.name) or (
            spec.section is not None and not spec.owns_section
        ), spec.name


def test_the_root_and_ctl_load_their_configuration_without_pandas_or_catboost() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from supervisor import cli, host, tree\n"
        "from supervisor.config import load_config, load_core_config\n"
        f"load_config({str(ROOT / 'conf/default.toml')!r}, [])\n"
        f"load_core_config({str(ROOT / 'conf/default.toml')!r}, [])\n"
        "print(sorted(m for m in ('pandas', 'catboost') if m in sys.modules))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False, timeout=60
    )

    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
