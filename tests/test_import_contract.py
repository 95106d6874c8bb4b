"""The house rules that keep the code readable, checked on every `make test`:

- the import contract in `.importlinter` (layers, the core below every layer, no cycles), by import-linter;
- an import inside a function is allowed only with a one-line `# lazy: <reason>` comment above it (optional
  dependencies, and the config modules that refuse a bad config before torch loads);
- no source file over 500 lines, but the benchmark generator's data tables.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("toolprior", "training", "evals", "probes", "steering", "experiments")
# Data tables (domains, templates and phrasings of the benchmark generator) may run longer than code.
DATA_TABLES = ("training/benchmark/domains/", "training/benchmark/kinds/", "training/benchmark/thinks.py")
MAX_LINES = 500


LAYER_FOLDERS = PACKAGES[1:]  # imported as toolprior.<folder> through the links toolprior/<folder>


def sources() -> list[Path]:
    """Every source file once (toolprior/<folder> links to a folder that is also listed)."""
    return sorted({p.resolve() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")})


def test_the_layer_folders_are_imported_under_toolprior_only():
    """`import probes` (not `toolprior.probes`) would load a second copy of every module, with classes that are not
    the first copy's; an installed toolprior has no such top-level name at all."""
    for folder in LAYER_FOLDERS:
        link = ROOT / "toolprior" / folder
        assert link.is_symlink() and link.resolve() == (ROOT / folder).resolve(), f"toolprior/{folder} -> ../{folder}"
    bare = []
    for path in [*sources(), *sorted((ROOT / "tests").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            bare += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in LAYER_FOLDERS]
    assert not bare, "import these as toolprior.<folder>:\n" + "\n".join(bare)


def test_import_contract_holds():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.fail("lint-imports is missing: `make install` puts import-linter (a dev dependency) in .venv")
    done = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def _reason_above(lines: list[str], index: int) -> bool:
    """Whether a `# lazy:` line heads the group of import lines (blank lines allowed) that line `index` is in."""
    i = index - 1
    while i >= 0:
        line = lines[i].strip()
        if line.startswith("# lazy:"):
            return True
        if not line or line.startswith(("import ", "from ", ")")) or line.endswith(","):
            i -= 1
            continue
        return False
    return False


def function_level_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of each import inside a function without a `# lazy:` reason on the line above or its own."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    tree = ast.parse(text)
    found: list[tuple[int, str]] = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if "# lazy:" in lines[node.lineno - 1] or _reason_above(lines, node.lineno - 1):
                continue
            module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            found.append((node.lineno, module or "."))
    return found


def test_imports_inside_functions_say_why():
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in sources()
        for line, module in sorted(set(function_level_imports(path)))
    ]
    assert not bad, "imports inside functions without a `# lazy: <reason>` line:\n" + "\n".join(bad)


def test_no_source_file_over_500_lines():
    long = [
        f"{path.relative_to(ROOT)}: {n}"
        for path in sources()
        if not str(path.relative_to(ROOT)).startswith(DATA_TABLES)
        and (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert not long, "files over 500 lines (split them along their ideas):\n" + "\n".join(long)
