"""fxcap.modeling has no import cycle: read statically from the sources (every module, imports inside
functions included), and key modules imported alone in a fresh interpreter."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _graph_tool():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "bench" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("lazy", [False, True], ids=["module-level", "with-function-level"])
def test_modeling_has_no_import_cycle(lazy):
    tool = _graph_tool()
    graph = tool.import_graph("fxcap.modeling", lazy=lazy)
    assert "fxcap.modeling.schemes" in graph and "fxcap.modeling.fast.plans" in graph
    assert tool.find_cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    tool = _graph_tool()
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert tool.find_cycles(graph) == [["a", "b", "c"]]
    assert tool.layers({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == [["b"], ["a"], ["c"]]


def test_the_registry_sits_below_the_models():
    """The scheme records and the config import nothing of the models (the models import them)."""
    graph = _graph_tool().import_graph("fxcap.modeling", lazy=True)
    assert graph["fxcap.modeling.schemes"] == set()
    assert graph["fxcap.modeling.config"] == {"fxcap.modeling.schemes"}
    assert "fxcap.modeling.fast" not in graph["fxcap.modeling.base"]


@pytest.mark.parametrize("module", ["config", "concat", "fast.plans"])
def test_key_modules_import_alone_in_a_fresh_interpreter(module):
    """Each of these imported first, alone (the modules that formed the old cycle's ends)."""
    code = f"import fxcap.modeling.{module}"
    if module == "config":  # the bottom layer stays light: no torch
        code += "; import sys; assert 'torch' not in sys.modules, 'config imported torch'"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert result.returncode == 0, result.stderr


LAYERS = ("dsp", "capture", "dataset", "modeling", "adaptive", "report", "cli")
"""fxcap's packages from the bottom up: each imports only packages before it (and the shared basics:
errors, io, numba_cache, parallel, the version)."""


def test_packages_import_only_the_layers_below():
    tool = _graph_tool()
    graph = tool.import_graph("fxcap", lazy=True)
    assert tool.find_cycles(graph) == []  # no module of fxcap takes part in a cycle, lazy imports included
    for module, targets in graph.items():
        here = module.split(".")[1] if module.count(".") else ""
        if here not in LAYERS:
            continue
        for target in targets:
            there = target.split(".")[1] if target.count(".") else ""
            if there in LAYERS:
                assert LAYERS.index(there) <= LAYERS.index(here), f"{module} imports {target} from a higher layer"
