"""The numba disk cache is keyed to every source a kernel inlines, and never makes a run fail.

The end-to-end test works on a copy of the package in a temporary folder (the real tree and its
``__pycache__`` are left alone): it renders through a tiny model in fresh processes, edits a helper
that the kernel inlines from another file (``fast/ops.py``), and checks that the next process
recompiles the kernel and computes with the new helper instead of loading the stale machine code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fxcap
from fxcap import numba_cache

SCRIPT = r"""
import json, torch
torch.manual_seed(0)
from fxcap.modeling.registry import ModelConfig, build_model
from fxcap.modeling.fast import kernels
model = build_model(ModelConfig(cond="concat", cell="gru", num_knobs=1, hidden_size=4))
x = torch.sin(torch.arange(64, dtype=torch.float32) / 5)[None] * 0.8
knobs = torch.tensor([[0.3]])
with torch.no_grad():
    fast, _ = model(x, knobs)
    model.fast = False
    reference, _ = model(x, knobs)
stats = [kernels.cell_kernel(4, False, scaled).stats for scaled in (False, True)]
print(json.dumps({
    "fast": fast[0].tolist(), "reference": reference[0].tolist(),
    "hits": sum(sum(s.cache_hits.values()) for s in stats),
    "misses": sum(sum(s.cache_misses.values()) for s in stats),
    "cache_path": [s.cache_path for s in stats if s.cache_misses or s.cache_hits][0],
}))
"""


def _copy_package(root: Path) -> Path:
    source = Path(fxcap.__file__).parent
    shutil.copytree(source, root / "fxcap", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root / "fxcap"


def _run(root: Path, home: Path, extra_env: dict[str, str] | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_") and k != "FXCAP_REFERENCE"}
    env.update({"PYTHONPATH": str(root), "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
                "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", **(extra_env or {})})
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _close(a, b, tol=1e-5) -> bool:
    return max(abs(p - q) for p, q in zip(a, b)) <= tol


@pytest.mark.slow  # four fresh processes, two kernel compilations: about 20 s
def test_editing_an_inlined_helper_recompiles_the_kernel(tmp_path):
    root = tmp_path / "src"
    package = _copy_package(root)
    home = tmp_path / "home"
    home.mkdir()

    cold = _run(root, home)
    assert cold["misses"] > 0 and cold["hits"] == 0
    assert Path(cold["cache_path"]).is_relative_to(package)  # the copy's own __pycache__
    assert _close(cold["fast"], cold["reference"])

    warm = _run(root, home)
    assert warm["hits"] > 0 and warm["misses"] == 0  # the cache works: loaded, not compiled
    assert warm["fast"] == cold["fast"]

    ops = package / "modeling" / "fast" / "ops.py"
    correct = ops.read_text()
    broken = correct.replace("h[i] = c + z * (h[i] - c)", "h[i] = c + z * (c - h[i])")  # a GRU bug in a helper
    assert broken != correct
    ops.write_text(broken)  # kernels.py, which defines the kernel, is unchanged
    edited = _run(root, home)
    assert edited["misses"] > 0 and edited["hits"] == 0  # recompiled...
    assert not _close(edited["fast"], edited["reference"], 1e-3)  # ...from the edited helper

    ops.write_text(correct)
    restored = _run(root, home)
    assert restored["misses"] > 0 and restored["fast"] == cold["fast"]


def test_unwritable_tree_and_home_fall_back_to_a_private_temp_folder(tmp_path):
    root = tmp_path / "src"
    package = _copy_package(root)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # paths below a regular file cannot be created, even by root
    for folder in ("modeling/fast", "modeling", "capture", "capture/virtual", ""):
        (package / folder / "__pycache__").write_text("")
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = _run(root, blocker / "home", {"TMPDIR": str(temp)})
    assert Path(result["cache_path"]).is_relative_to(temp / f"fxcap-numba-{os.getuid()}")
    assert _close(result["fast"], result["reference"])
    assert (os.stat(temp / f"fxcap-numba-{os.getuid()}").st_mode & 0o077) == 0  # private: a cache is code


def test_no_writable_folder_at_all_disables_the_disk_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(numba_cache, "cache_folder_candidates", lambda source: [str(tmp_path / "file" / "x")])
    monkeypatch.setattr(numba_cache, "_private_temp_root", lambda: None)
    (tmp_path / "file").write_text("")
    module = tmp_path / "kernels.py"
    module.write_text("")
    assert numba_cache.cache_sources(module) is False
    assert numba_cache.SourceFolderLocator.from_function(lambda: None, str(module)) is None


def test_the_stamp_covers_every_source_of_the_folder(tmp_path):
    (tmp_path / "kernels.py").write_text("a = 1\n")
    (tmp_path / "ops.py").write_text("b = 2\n")
    (tmp_path / "notes.txt").write_text("not a source")
    before = numba_cache.folder_stamp(str(tmp_path))
    (tmp_path / "notes.txt").write_text("changed")
    assert numba_cache.folder_stamp(str(tmp_path)) == before
    (tmp_path / "ops.py").write_text("b = 3\n")  # same size, other bytes
    assert numba_cache.folder_stamp(str(tmp_path)) != before
    assert numba_cache.folder_stamp(str(tmp_path)) == numba_cache.sources_hash(tmp_path)


@pytest.mark.parametrize("module", ["fxcap.modeling.fast.kernels", "fxcap.capture.virtual.overdrive"])
def test_the_kernel_folders_use_the_source_keyed_locator(module):
    import importlib

    path = os.path.realpath(importlib.import_module(module).__file__)
    assert os.path.dirname(path) in numba_cache._FOLDERS
    assert numba_cache._CacheImpl._locator_classes[0] is numba_cache.SourceFolderLocator


KERNEL_MODULE = '''
from numba import njit
from fxcap.numba_cache import cache_sources

@njit(cache=cache_sources(__file__))
def energy(x):
    total = 0.0
    for i in range(x.size):
        total += x[i] * x[i]
    return total
'''

TOGETHER = r"""
import json, os, sys, time
from pathlib import Path
import numpy as np
import kern
barrier = Path(sys.argv[1])
(barrier / sys.argv[2]).write_text("")
while len(list(barrier.iterdir())) < 2:  # both processes call the kernel at the same moment
    time.sleep(0.005)
value = kern.energy(np.arange(5.0))
stats = kern.energy.stats
print(json.dumps({"value": value, "misses": sum(stats.cache_misses.values()), "hits": sum(stats.cache_hits.values())}))
"""


def test_processes_starting_together_compile_a_kernel_once(tmp_path):
    """Two processes call the same uncompiled kernel at once: one compiles it, the other waits for
    the compile lock and loads the saved machine code (without the lock both would compile)."""
    source = tmp_path / "kernels"
    source.mkdir()
    (source / "kern.py").write_text(KERNEL_MODULE)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env["PYTHONPATH"] = os.pathsep.join([str(source), str(Path(fxcap.__file__).parent.parent)])
    runs = [subprocess.Popen([sys.executable, "-c", TOGETHER, str(barrier), name], cwd=source, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    results = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["value"] for r in results] == [30.0, 30.0]
    assert sorted((r["misses"], r["hits"]) for r in results) == [(0, 1), (1, 0)]
    assert list((source / "__pycache__").glob("kern.energy-*.lock"))  # beside the cache files


def test_a_compile_lock_held_elsewhere_is_waited_for_then_given_up(tmp_path):
    path = str(tmp_path / "kernel.lock")
    held = numba_cache._acquire(path, 0.0)
    assert held is not None
    started = time.monotonic()
    assert numba_cache._acquire(path, 0.3) is None  # still held: give up after the wait and compile alone
    assert time.monotonic() - started >= 0.3
    numba_cache._release(held)
    again = numba_cache._acquire(path, 0.0)
    assert again is not None
    numba_cache._release(again)
