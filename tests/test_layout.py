"""The house rules a reviewer would otherwise check by hand: no import circle anywhere in the
app, no private name imported from another module, no module past the size a reader holds in
mind, and the outside systems each reached through their one door."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("backups", "a4c_backup")
MAX_LINES = 500


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[dotted.removesuffix(".__init__")] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every import, at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                # "from backups.operations import running" imports the module running.
                child = f"{base}.{alias.name}"
                if child in known:
                    found.append((child, [], node.lineno))
                else:
                    found.append((base, [alias.name], node.lineno))
    return [(m, names, line) for m, names, line in found if m in known]


def graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: {m for m, _, _ in imports_of(name, path, set(known))} - {name}
        for name, path in known.items()
    }


def test_the_app_has_no_import_circle():
    edges = graph()
    # A package's __init__ re-exporting its own modules is not a circle through them.
    for name in edges:
        edges[name] = {m for m in edges[name] if not name.startswith(m + ".")}
    state: dict[str, str] = {}
    circles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                circles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_no_module_imports_a_private_name_from_another():
    known = modules()
    offences = []
    for name, path in known.items():
        for module, names, line in imports_of(name, path, set(known)):
            where = f"{path.relative_to(ROOT)}:{line}"
            offences += [f"{where} {module}.{n}" for n in names if n.startswith("_")]
    assert not offences, "private names imported across modules:\n" + "\n".join(offences)


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_longer_than_a_reader_holds_in_mind(name):
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by concern"


DOORS = {
    "elasticsearch": "backups.elastic",
    "elastic_transport": "backups.elastic",
    "requests": "backups.alien4cloud",
    "boto3": "backups.objectstore",
    "botocore": "backups.objectstore",
}


def test_only_the_elasticsearch_door_imports_the_elasticsearch_client():
    known = modules()
    strays = []
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            roots = []
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                roots = [node.module.split(".")[0]]
            for root in roots:
                door = DOORS.get(root)
                if door and not name.startswith(door):
                    strays.append(f"{name} imports {root}")
    assert not strays, "\n".join(strays)


def test_outside_backups_storage_only_its_package_is_imported():
    """backups.storage is the door to backup storage: its __init__ lists what the rest of the
    app may use, so that the modules inside it can move without the operations noticing."""
    known = modules()
    strays = []
    for name, path in known.items():
        if name == "backups.storage" or name.startswith("backups.storage."):
            continue
        for module, _, line in imports_of(name, path, set(known)):
            if module.startswith("backups.storage."):
                strays.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not strays, "import backups.storage instead:\n" + "\n".join(strays)


def test_outside_backups_objectstore_only_its_package_is_imported():
    """backups.objectstore is the door to the off-site bucket, as backups.storage is to the
    backup storage: its __init__ lists what the rest of the app may use."""
    known = modules()
    strays = []
    for name, path in known.items():
        if name == "backups.objectstore" or name.startswith("backups.objectstore."):
            continue
        for module, _, line in imports_of(name, path, set(known)):
            if module.startswith("backups.objectstore."):
                strays.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not strays, "import backups.objectstore instead:\n" + "\n".join(strays)


# Where a run's status may be written: the rows' transition() and the lifecycle that calls it.
STATUS_WRITERS = {"backups.models.runs", "backups.operations.lifecycle"}


def status_writes(tree: ast.AST) -> list[int]:
    """Lines that write a status: ``status=`` given to an update (a queryset's, a writer's),
    ``something.status = ...`` and setattr(..., "status", ...). Creating a row is no write."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in ("update", "update_or_create", "bulk_update") and any(
                k.arg == "status" for k in node.keywords
            ):
                lines.append(node.lineno)
            if name == "setattr" and any(
                isinstance(a, ast.Constant) and a.value == "status" for a in node.args
            ):
                lines.append(node.lineno)
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Attribute) and t.attr == "status" for t in targets):
                lines.append(node.lineno)
    return sorted(lines)


def test_a_status_is_written_only_by_a_transition():
    offences = [
        f"{path.relative_to(ROOT)}:{line}"
        for name, path in modules().items()
        if name.startswith("backups") and name not in STATUS_WRITERS
        for line in status_writes(ast.parse(path.read_text()))
    ]
    assert not offences, "a status written outside RunRow.transition():\n" + "\n".join(offences)


def test_the_status_rule_sees_the_writes_it_forbids():
    source = (
        "Backup.objects.filter(pk=1).update(status='failed')\n"
        "runner.update(status='succeeded', phase='done')\n"
        "run.status = 'cancelled'\n"
        "setattr(run, 'status', 'failed')\n"
        "Backup.objects.create(name='x', status='running')\n"  # a new row: allowed
    )
    assert status_writes(ast.parse(source)) == [1, 2, 3, 4]


def test_nothing_outside_the_web_imports_the_web():
    """The web is a door, like the command line: the rooms it reads and formatting it shares
    live below it (backups/selectors.py, backups/formatting.py). Only the project's urls and
    settings wire it in."""
    known = modules()
    strays = []
    for name, path in known.items():
        if name == "backups.web" or name.startswith(("backups.web.", "a4c_backup.")):
            continue
        for module, _, line in imports_of(name, path, set(known)):
            if module == "backups.web" or module.startswith("backups.web."):
                strays.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not strays, "only backups/web may import backups.web:\n" + "\n".join(strays)
