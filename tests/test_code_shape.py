"""The shape the code keeps as it grows (docs/architecture.md): every HTTP route answers a typed
model, the app is only assembled in `create_app`, no function runs past a screenful, and long
argument lists stay rare (a typed record reads better than eight positional values)."""

from __future__ import annotations

import ast
import inspect
import subprocess
from pathlib import Path

from fastapi import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from serve_app.app import ROUTERS, create_app

ROOT = Path(__file__).resolve().parents[1]
LONGEST_FUNCTION = 80  # lines
MANY_PARAMETERS = 6  # more than this is a long argument list
AT_MOST_WITH_MANY = 5  # functions allowed one
RAW_FORMATS = ("/api/ledger/checkpoint", "/ledger/checkpoint", "/ledger/tile/{path:path}")


def _functions() -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    out = []
    for name in files.split():
        if "/migrations/" in name or not (ROOT / name).exists():
            continue
        tree = ast.parse((ROOT / name).read_text(encoding="utf-8"))
        out += [(name, node) for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    return out


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = node.args
    names = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs if p.arg not in ("self", "cls")]
    return len(names) + (a.vararg is not None) + (a.kwarg is not None)


def test_no_function_runs_long_and_long_argument_lists_stay_rare() -> None:
    functions = _functions()
    long = [f"{name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for name, node in functions if node.end_lineno - node.lineno + 1 > LONGEST_FUNCTION]
    assert long == []
    many = [f"{name}:{node.lineno} {node.name} ({_parameters(node)})" for name, node in functions
            if _parameters(node) > MANY_PARAMETERS]
    assert len(many) <= AT_MOST_WITH_MANY, many


def test_every_route_answers_a_typed_model() -> None:
    routes = [r for module in ROUTERS for r in module.router.routes if isinstance(r, APIRoute)]
    assert len(routes) >= 35
    for route in routes:
        answer = inspect.signature(route.endpoint).return_annotation
        # no content, a page, or the log's text and tiles (C2SP formats): a Response of its kind
        if route.status_code == 204 or route.path in ("/", "/track-record", *RAW_FORMATS):
            assert answer in ("Response", "HTMLResponse", "PlainTextResponse") or issubclass(answer, Response), route.path
            continue
        assert route.response_model is not None, f"{route.path} has no response_model"
        typed = route.response_model if isinstance(route.response_model, type) else None
        assert (typed is not None and issubclass(typed, BaseModel)) or route.response_class is not None, route.path
        assert answer not in (dict, "dict[str, Any]", inspect.Signature.empty), f"{route.path} returns {answer!r}"


def test_create_app_only_assembles() -> None:
    lines = inspect.getsource(create_app).splitlines()
    assert len(lines) <= 60
