"""Print the gunicorn target of the app in the current directory, e.g. ``wsgi:application``.

Looks in wsgi.py, app.py, main.py, application.py and server.py, in that order, for a
module-level ``application`` or ``app`` (or a ``create_app`` factory). Exits 1 when none is found.
"""

import ast
import sys
from pathlib import Path

MODULES = ("wsgi", "app", "main", "application", "server")
NAMES = ("application", "app")


def top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def find_target(root: Path) -> str | None:
    for module in MODULES:
        path = root / f"{module}.py"
        if not path.is_file():
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except SyntaxError:
            continue
        names = top_level_names(tree)
        for name in NAMES:
            if name in names:
                return f"{module}:{name}"
        if "create_app" in names:
            return f"{module}:create_app()"
    return None


if __name__ == "__main__":
    target = find_target(Path.cwd())
    if target is None:
        sys.exit(1)
    print(target)
