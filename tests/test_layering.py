"""The import rule of docs/architecture.md, checked on every module's imports (AST, no import side effects).

- bot/core never imports slack_sdk, slack_bolt, starlette, uvicorn, or bot.slack|cli|webhooks|app;
- the edges (bot.slack, bot.cli, bot.webhooks) import core, never each other, never bot.app;
- only bot.app imports everything;
- providers and storage import nothing from bot, nor each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EDGES = ("bot.slack", "bot.cli", "bot.webhooks")
WEB_LIBS = ("slack_sdk", "slack_bolt", "starlette", "uvicorn")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports count too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def forbidden_for(module: str) -> tuple[str, ...]:
    """The packages `module` must not import."""
    if within(module, "bot.core"):
        return WEB_LIBS + EDGES + ("bot.app",)
    for edge in EDGES:
        if within(module, edge):
            return tuple(e for e in EDGES if e != edge) + ("bot.app",)
    if within(module, "providers"):
        return ("bot", "storage")
    if within(module, "storage"):
        return ("bot", "providers")
    return ()


def all_modules() -> list[Path]:
    return sorted(p for pkg in ("bot", "providers", "storage") for p in (ROOT / pkg).rglob("*.py"))


def violations() -> list[str]:
    found = []
    for path in all_modules():
        module = module_name(path)
        banned = forbidden_for(module)
        for imported in sorted(imports_of(path)):
            if any(within(imported, b) for b in banned):
                found.append(f"{module} imports {imported}")
    return found


def test_the_import_rule_holds() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("module", "imported", "allowed"),
    [
        ("bot.core.dispatch", "slack_sdk", False),
        ("bot.core.dispatch", "bot.slack.announcer", False),
        ("bot.core.dispatch", "providers.base", True),
        ("bot.slack.app", "bot.core.sending", True),
        ("bot.slack.app", "bot.cli.main", False),
        ("bot.cli.main", "bot.slack.text", False),
        ("bot.webhooks.routes", "starlette.requests", True),
        ("bot.webhooks.routes", "bot.app.runtime", False),
        ("bot.app.runtime", "bot.slack.app", True),
        ("storage.store", "bot.core.config", False),
        ("storage.store", "providers.base", False),
        ("providers.base", "storage.store", False),
    ],
)
def test_the_rule_itself(module: str, imported: str, allowed: bool) -> None:
    # The checker must be able to fail: each row is one decision of the rule.
    assert (not any(within(imported, b) for b in forbidden_for(module))) is allowed
