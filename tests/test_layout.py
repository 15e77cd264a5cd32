"""The rooms of DESIGN.md, checked on the source: no import circle, the runtime without
torch, the worker without the training jobs, tools without each other's private names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("streams", "encoder", "export")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imports(path: Path, top_level_only: bool) -> list[tuple[str, list[str]]]:
    """(module, names) of each ``import`` / ``from ... import``; the module's top level
    only (what runs at import time), or every one, lazy ones inside functions too."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: list[tuple[str, list[str]]] = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
    return found


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The project module an import names (a name inside a package resolves to it)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def test_no_import_circle_at_import_time() -> None:
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        deps = set()
        for module, names in imports(path, top_level_only=True):
            for target in [f"{module}.{n}" for n in names] or [module]:
                dep = resolve(target, known)
                if dep and dep != name and not name.startswith(dep + "."):
                    deps.add(dep)  # a package's own __init__ is imported first: not a circle
        graph[name] = deps
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                pytest.fail("import circle: " + " -> ".join([*path, node, dep]))
            if dep not in state:
                visit(dep, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


@pytest.mark.parametrize("room", ["streams/worker", "streams/store", "streams/kafka", "encoder"])
def test_the_runtime_never_imports_torch_or_a_training_job(room: str) -> None:
    for path in (ROOT / room).rglob("*.py"):
        for module, _ in imports(path, top_level_only=False):
            assert not module.startswith(("torch", "transformers", "export", "streams.training")), (
                f"{path.relative_to(ROOT)} imports {module}"
            )


@pytest.mark.parametrize("room", ["streams/cli", "streams/bench", "streams/rollout"])
def test_tools_import_nothing_private(room: str) -> None:
    for path in (ROOT / room).rglob("*.py"):
        for module, names in imports(path, top_level_only=False):
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            assert not private, f"{path.relative_to(ROOT)} imports {private} from {module}"


def test_nothing_is_left_flat_in_streams() -> None:
    """The domain core stays at the top of streams/; everything else lives in its room."""
    core = {"__init__", "settings", "errors", "records", "interest", "head", "processor"}
    core |= {"deadletter", "parking"}  # the dead-letter and parked topics' headers
    flat = {p.stem for p in (ROOT / "streams").glob("*.py")}
    assert flat <= core, f"modules outside a room: {sorted(flat - core)}"


def test_the_scripts_import_what_exists() -> None:
    """The scripts' inline Python (make demo, make feedback-round, ...) names real modules
    and names in them: a move of a module breaks no script unseen."""
    import importlib

    for script in sorted((ROOT / "scripts").glob("*.sh")):
        text = script.read_text(encoding="utf-8")
        for module, names in re.findall(r"^from (streams\.[\w.]+) import ([\w, ]+)$", text, re.M):
            imported = importlib.import_module(module)
            for name in (n.strip() for n in names.split(",")):
                assert hasattr(imported, name), f"{script.name}: {module} has no {name}"
        for module in re.findall(r"python -m (streams\.[\w.]+)", text):
            assert importlib.util.find_spec(module) is not None, f"{script.name}: {module}"


def test_the_readme_opens_with_the_picture_the_two_commands_and_a_true_contents() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    top = text[: text.index("## Status")]
    picture = re.search(r"!\[[^\]]+\]\((docs/[^)]+)\)", top)
    assert picture and (ROOT / picture.group(1)).is_file()
    assert "make demo" in top and "make test" in top
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    listed = re.findall(r"^- \[(.+)\]\(#([\w-]+)\)$", top, flags=re.M)
    assert [name for name, _ in listed] == [h for h in headings if h != "Contents"]
    for name, link in listed:
        assert link == anchor(name)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def markdown_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", markdown_pages(), ids=lambda p: p.name)
def test_every_relative_link_of_the_docs_resolves(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target} names no file"
        if fragment and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), flags=re.M)
            assert fragment in {anchor(h) for h in headings}, f"{page.name}: no #{fragment}"


def test_every_section_a_script_rewrites_is_marked_in_its_page() -> None:
    """`make results`/`train`/`reliability`/`finetune-curve`/`compose-smoke` rewrite what
    stands between markers; a page that lost its markers would fail only at the end of a
    long run."""
    written = {
        "results": "README.md",
        "train": "README.md",
        "reliability": "README.md",
        "curve": "docs/finetuning.md",
        "compose-smoke": "docs/operations.md",
    }
    scripts = " ".join(p.read_text(encoding="utf-8") for p in (ROOT / "scripts").iterdir())
    for name, page in written.items():
        text = (ROOT / page).read_text(encoding="utf-8")
        assert f"<!-- {name}:begin -->" in text and f"<!-- {name}:end -->" in text, (name, page)
    for page in ("docs/finetuning.md", "docs/operations.md"):
        assert page in scripts, f"no script writes {page}"
