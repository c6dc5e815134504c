"""The import contract (docs/architecture.md): no circle among the project's modules (a lazy
import inside a function counts: it hides a circle, it does not break it), the HTTP layer never
imports a job's entry point nor the launcher, Ray stays in the engine and at the serving and launching edges, and a
fitted forecaster is changed only by its own methods (`with_calibration`, `with_meta`)."""

from __future__ import annotations

import ast
import subprocess
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# where `import ray` may stand: the engine (Ray Data, Train, Tune, tasks), the Serve application and
# the process that launches it, and the jobs' common start-up (joining a cluster, its metrics)
RAY_EDGES = ("engine/", "serve_app/deployments.py", "launcher/",
             "serve_app/metrics.py", "jobs/cli.py", "jobs/metrics.py")


@cache
def _modules() -> dict[str, ast.Module]:
    listed = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    out = {}
    for name in listed.split():
        if name.startswith(("tests/", "bench/")) or "/migrations/" in name or not (ROOT / name).exists():
            continue
        module = name[:-3].replace("/", ".").removesuffix(".__init__")
        out[module] = ast.parse((ROOT / name).read_text(), name)
    return out


def _imported(tree: ast.Module) -> set[str]:
    """Every module name an import anywhere in `tree` names (a `from a import b` names a.b too)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, tree in modules.items():
        graph[name] = {target for target in _imported(tree) if target in modules and target != name}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_itself_round_a_circle() -> None:
    assert _circles(_graph()) == []


def test_the_circle_finder_finds_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_http_layer_never_imports_a_job() -> None:
    wrong = {name: sorted(t for t in targets if t.split(".")[0] == "jobs")
             for name, targets in _graph().items() if name.startswith("serve_app")}
    assert {k: v for k, v in wrong.items() if v} == {}


def test_nothing_the_service_runs_imports_its_launcher() -> None:
    """The launcher (process supervision) is above the Serve application and the HTTP API."""
    wrong = {name: sorted(t for t in targets if t.split(".")[0] == "launcher")
             for name, targets in _graph().items() if name.split(".")[0] != "launcher" and name != "serve_app.__main__"}
    assert {k: v for k, v in wrong.items() if v} == {}


def test_ray_stays_in_the_engine_and_at_the_serving_and_launching_edges() -> None:
    users = []
    for name, tree in _modules().items():
        path = name.replace(".", "/") + ".py"
        if any(target == "ray" or target.startswith("ray.") for target in _imported(tree)) \
                and not any(path.startswith(edge) or name.replace(".", "/") + "/" == edge for edge in RAY_EDGES):
            users.append(name)
    assert users == []


def test_a_fitted_forecaster_is_changed_only_by_its_own_methods() -> None:
    """No assignment to a forecaster's calibration or metadata (or into its metadata) outside
    `training/forecaster.py`: training, selection and serving make a new one instead."""
    writes = []
    for name, tree in _modules().items():
        if name == "training.forecaster":
            continue
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else []
            for target in targets:
                while isinstance(target, ast.Subscript):
                    target = target.value
                if isinstance(target, ast.Attribute) and target.attr in ("calibration", "meta") \
                        and not (isinstance(target.value, ast.Name) and target.value.id == "self"):
                    writes.append(f"{name}:{node.lineno}")
    assert writes == []


def test_the_statistics_stand_alone() -> None:
    """stats/ is pure numpy and pandas: training, accuracy and the benchmarks import it, never the reverse."""
    wrong = {name: sorted(t for t in targets if t.split(".")[0] != "stats")
             for name, targets in _graph().items() if name.split(".")[0] == "stats"}
    assert {k: v for k, v in wrong.items() if v} == {}


def test_every_registered_member_is_the_class_its_name_says() -> None:
    from training.models.member import MEMBER_KINDS, MEMBERS

    for name in MEMBER_KINDS:
        assert MEMBERS[name].name == name
