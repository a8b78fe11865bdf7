"""The shape of the code: imports flow one way, the grader stays small and self-contained."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("kit", "eval")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every kit and eval module and the kit/eval modules it imports (at any depth of code)."""
    modules = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def cycles_in(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk meets, as the modules along it."""
    state: dict[str, str] = {}
    cycles = []

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(trail[trail.index(target):] + [target])
            elif target not in state:
                visit(target, trail + [target])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_no_import_cycle_in_kit_or_eval():
    graph = import_graph()
    assert "kit.train.loop" in graph["kit.train.crossfit"]      # lazy imports count too
    assert not cycles_in(graph), f"import cycles: {cycles_in(graph)}"


def test_a_cycle_is_found_when_there_is_one():
    graph = import_graph()
    graph["kit.files"] = graph["kit.files"] | {"kit.train.run"}
    assert any("kit.files" in cycle for cycle in cycles_in(graph))


def loaded_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after ``statement``."""
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    return set(out.split())


def test_the_grader_and_the_server_never_import_the_training_stack():
    eval_modules = sorted(module_name(p) for p in (ROOT / "eval").rglob("*.py")
                          if p.name != "__main__.py")
    loaded = loaded_after("; ".join(f"import {m}" for m in eval_modules))
    assert not {"torch", "timm", "torchvision", "albumentations", "cv2"} & loaded
    assert not {m for m in loaded if m.startswith("kit.train") or m == "kit.models"}


def test_kit_predict_does_not_import_the_training_loop_or_matplotlib():
    loaded = loaded_after("import kit.predict")
    assert "kit.train.loop" not in loaded and "kit.train.crossfit" not in loaded
    assert "matplotlib" not in loaded


def test_building_the_command_line_imports_no_torch():
    loaded = loaded_after("from kit.cli import build_parser; build_parser()")
    assert "torch" not in loaded


def test_no_module_is_much_over_300_lines():
    long = {str(p.relative_to(ROOT)): n for package in PACKAGES
            for p in (ROOT / package).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 320}
    assert not long, long


def test_every_command_line_option_says_what_it_does():
    import argparse

    from eval.cli import build_parser as eval_parser
    from kit.cli import build_parser as kit_parser
    silent = []
    for program, parser in (("kit", kit_parser()), ("python -m eval", eval_parser())):
        commands = next(a for a in parser._actions
                        if isinstance(a, argparse._SubParsersAction)).choices
        silent += [f"{program} {name} {option.option_strings[0]}"
                   for name, command in commands.items() for option in command._actions
                   if option.option_strings and not option.help]
    assert not silent, silent
