"""Keep the layers honest, and the project free of import circles.

The layers, lowest first (README, "Architecture"):

- storage (``storage``): tables, repositories, the unit of work; no platform, no flow.
- flows (``handlers``): what the bot says and does; no channel, no SQL, no setting.
- core (``bot.dialogue``): inbox, applying events, outbox, order, texts; no channel, no setting.
- settings (``bot.config``): validated settings, built on the core's and flows' constants.
- services (``bot.consultations``): consultation files, exports, opinion groups.
- platforms (``bot.channels.meta``, ``bot.channels.webhooks``): what channels on one platform's
  API share (Meta's webhook signature and handshake, Graph API errors, cut titles), and what
  every webhook shares (a capped body); no channel, so every channel may import it.
- channels (``bot.channels``): one package per channel, each on its own.
- scheduler (``scheduler``): jobs on the core; it knows no channel.
- composition (``bot.app``, ``bot.cli``, ``bot.web``…): builds and runs everything.

Every import counts, also one inside a function: an import moved into a function to dodge a
circle is still the circle.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "storage", "scheduler")

# Longest prefix wins: "bot.dialogue.core" is core, "bot.app" is composition.
LAYER_OF_PREFIX = {
    "storage": "storage",
    "handlers": "flows",
    "bot.dialogue": "core",
    "bot.config": "settings",
    "bot.consultations": "services",
    "bot.channels": "channels",
    # WhatsApp and Messenger are both Meta's: one webhook signature, one Graph API. What they
    # share lives here, below the channels, instead of one channel importing the other or the
    # same code written twice. It is no channel itself (channel_of), and imports none.
    "bot.channels.meta": "platforms",
    # Reading a webhook's capped body: Telegram's webhook needs it as Meta's does.
    "bot.channels.webhooks": "platforms",
    "scheduler": "scheduler",
    # The dashboard's account rules (passwords, limits, sessions) are a service the command line
    # and the pages share; its pages speak HTTP, so they stay in the composition layer.
    "bot.admin.accounts": "services",
    "bot": "composition",
}
BELOW = {
    "storage": set(),
    "flows": {"storage"},
    "core": {"flows", "storage"},
    "settings": {"core", "flows", "storage"},
    "services": {"settings", "core", "flows", "storage"},
    "platforms": {"core", "flows", "storage"},
    "channels": {"platforms", "settings", "core", "flows", "storage"},
    "scheduler": {"core", "flows", "storage"},
    "composition": {
        "channels",
        "platforms",
        "scheduler",
        "services",
        "settings",
        "core",
        "flows",
        "storage",
    },
}
# Outside libraries a layer must not know: a flow neither talks to a platform nor writes SQL.
FOREIGN = {
    "storage": {"telegram", "aiohttp"},
    "flows": {"telegram", "sqlalchemy", "aiohttp"},
    "core": {"telegram", "aiohttp"},
    "settings": {"telegram", "aiohttp", "sqlalchemy"},
    "services": {"telegram", "aiohttp"},
    "scheduler": {"telegram", "aiohttp"},
    "platforms": {"telegram"},
}


@dataclass(frozen=True)
class Import:
    """One import statement of a project module."""

    target: str  # the module (or name) imported, absolute
    line: int
    for_types_only: bool  # under ``if TYPE_CHECKING``: no import happens at run time


def project_modules(root: Path) -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imports_of(name: str, path: Path) -> Iterator[Import]:
    """The imports a module makes anywhere in its body, relative ones made absolute."""
    tree = ast.parse(path.read_text(), filename=str(path))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(tree):
        types_only = id(node) in typing_only
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno, types_only)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # "from package import module" imports the module; "from module import name" not.
            for alias in node.names:
                yield Import(f"{module}.{alias.name}", node.lineno, types_only)


def owner(target: str, modules: Iterable[str]) -> str | None:
    """The project module an imported name lives in (None: not the project's)."""
    known = set(modules)
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def layer_of(module: str) -> str:
    prefix = max(
        (p for p in LAYER_OF_PREFIX if module == p or module.startswith(p + ".")),
        key=len,
    )
    return LAYER_OF_PREFIX[prefix]


def channel_of(module: str) -> str | None:
    """The channel package a module belongs to ("bot.channels.telegram"), if any."""
    parts = module.split(".")
    if parts[:2] != ["bot", "channels"] or len(parts) < 3 or layer_of(module) != "channels":
        return None
    return ".".join(parts[:3])


def layer_leaks(root: Path) -> list[str]:
    """Every import that reaches sideways or up, or into a library its layer must not know."""
    modules = project_modules(root)
    leaks: list[str] = []
    for name, path in modules.items():
        layer = layer_of(name)
        for imported in imports_of(name, path):
            where = f"{path.relative_to(root)}:{imported.line}"
            library = imported.target.split(".")[0]
            if library in FOREIGN.get(layer, set()):
                leaks.append(f"{where}: {layer} imports {library}")
            target = owner(imported.target, modules)
            if target is None or target == name:
                continue
            target_layer = layer_of(target)
            if target_layer != layer and target_layer not in BELOW[layer]:
                leaks.append(f"{where}: {layer} imports {target} ({target_layer})")
            own_channel, other_channel = channel_of(name), channel_of(target)
            if own_channel and other_channel and own_channel != other_channel:
                leaks.append(f"{where}: {own_channel} imports another channel, {other_channel}")
    return leaks


def import_circles(root: Path) -> list[list[str]]:
    """Groups of project modules that import each other, directly or round about."""
    modules = project_modules(root)
    graph = {
        name: {
            target
            for imported in imports_of(name, path)
            if not imported.for_types_only
            and (target := owner(imported.target, modules)) not in (None, name)
        }
        for name, path in modules.items()
    }
    # Tarjan's strongly connected components, iteratively (no recursion limit to meet).
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = lowest[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = lowest[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    lowest[node] = min(lowest[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    lowest[parent] = min(lowest[parent], lowest[node])
                if lowest[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        circles.append(sorted(component))
    return circles


def test_every_layer_imports_only_what_lies_below_it() -> None:
    assert layer_leaks(ROOT) == []


def test_no_project_modules_import_each_other_in_a_circle() -> None:
    assert import_circles(ROOT) == []


def plant(root: Path, files: dict[str, str]) -> None:
    for package in PACKAGES:
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(source)


def test_the_checks_find_a_planted_leak_and_a_planted_circle(tmp_path: Path) -> None:
    plant(
        tmp_path,
        {
            # A flow that talks to Telegram and reads a setting; a job that knows a channel.
            "handlers/flow.py": "import telegram\nfrom bot.config import Settings\n",
            "scheduler/job.py": "def run():\n    from bot.channels.telegram import channel\n",
            "bot/channels/telegram/channel.py": "from bot.channels.webchat import channel\n",
            "bot/channels/webchat/channel.py": "",
            # What channels share may not lean on one of them.
            "bot/channels/meta/graph.py": "from bot.channels.webchat import channel\n",
            "bot/config.py": "",
            # A circle closed by an import inside a function.
            "handlers/a.py": "from handlers import b\n",
            "handlers/b.py": "def f():\n    from handlers.a import g\n",
            # Imports for type checking only make no circle.
            "storage/c.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import storage.d\n"
            ),
            "storage/d.py": "import storage.c\n",
        },
    )
    assert layer_leaks(tmp_path) == [
        "bot/channels/meta/graph.py:1: platforms imports bot.channels.webchat.channel (channels)",
        "bot/channels/telegram/channel.py:1: bot.channels.telegram imports another channel, "
        "bot.channels.webchat",
        "handlers/flow.py:1: flows imports telegram",
        "handlers/flow.py:2: flows imports bot.config (settings)",
        "scheduler/job.py:2: scheduler imports bot.channels.telegram.channel (channels)",
    ]
    assert import_circles(tmp_path) == [["handlers.a", "handlers.b"]]


def test_nothing_connects_or_reads_the_environment_at_import_time() -> None:
    # Importing every module must not need settings, a database or a network.
    for name in project_modules(ROOT):
        # Alembic's scripts run inside Alembic only; __main__ runs the command line.
        if not name.endswith("__main__") and not name.startswith("storage.migrations"):
            importlib.import_module(name)
    source = "\n".join(path.read_text() for path in project_modules(ROOT).values())
    assert "os.environ" not in source
    assert "getenv(" not in source
