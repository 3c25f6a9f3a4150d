"""Run independent tasks here, in local worker processes, or as Ray tasks, behind one small interface.

:func:`task_runner` picks the backend; every backend's :meth:`TaskRunner.submit` returns a
:class:`concurrent.futures.Future`, so callers wait with :func:`concurrent.futures.wait` whatever runs them:

- ``inline``: in this process, one task at a time (no start-up cost; used for small jobs).
- ``processes``: a :class:`~concurrent.futures.ProcessPoolExecutor` of freshly spawned workers (never
  forked from this one, so no thread or S3-client state is inherited; they see this process's
  environment, e.g. credentials, as it is when the pool starts).
- ``ray``: Ray tasks with a CPU/GPU share each, on a running cluster (``address="auto"`` or
  ``"HOST:PORT"``, ``"ray://HOST:PORT"`` with Ray Client) or on a local instance started here
  (``address="local"``). If Ray is already initialised in this process, that instance is used.

Task functions must be importable module-level functions (they are sent by reference), and on a Ray
cluster fxcap must be installed on every node; files they read or write must be visible there too.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

from fxcap.errors import FxcapError

def ray_module() -> Any:
    """``import ray`` with a clear error when it is missing."""
    try:
        import ray
    except ImportError:
        raise FxcapError("--ray needs Ray: pip install 'ray>=2.9' (or fxcap[scale])") from None
    return ray


def unwrap_error(exc: BaseException) -> BaseException:
    """The task's own exception (Ray wraps it in a ``RayTaskError`` that carries it as ``cause``)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


class TaskRunner:
    """Runs ``fn(*args)`` somewhere and hands back a :class:`Future`. Use as a context manager."""

    kind = "inline"
    slots = 1
    """How many tasks run at once (for callers that keep a bounded number in flight)."""

    def submit(self, fn: Callable[..., Any], *args: Any, num_cpus: float = 1.0, num_gpus: float = 0.0) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        return future

    def cancel(self, future: Future) -> None:
        future.cancel()

    def close(self) -> None:
        """Release workers (idempotent)."""

    def __enter__(self) -> "TaskRunner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class ProcessRunner(TaskRunner):
    """Local worker processes (see the module docstring)."""

    kind = "processes"

    def __init__(self, workers: int):
        self.slots = max(1, int(workers))
        self.pool = ProcessPoolExecutor(max_workers=self.slots, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, fn: Callable[..., Any], *args: Any, num_cpus: float = 1.0, num_gpus: float = 0.0) -> Future:
        return self.pool.submit(fn, *args)

    def restart(self) -> None:
        """Replace a broken pool (a worker died) with a fresh one."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = ProcessPoolExecutor(max_workers=self.slots, mp_context=multiprocessing.get_context("spawn"))

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayRunner(TaskRunner):
    """Ray tasks (see the module docstring)."""

    kind = "ray"

    def __init__(self, address: str):
        ray = ray_module()
        self.ray = ray
        self.owns = not ray.is_initialized()
        if self.owns:
            package_root = str(Path(__file__).resolve().parents[1])
            runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}}
            try:
                if address == "local":
                    ray.init(include_dashboard=False, runtime_env=runtime_env, log_to_driver=False)
                else:
                    ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise FxcapError(f"cannot connect to the Ray cluster at {address!r} ({str(exc).splitlines()[0][:200]}); "
                                 "start one with `ray start --head` or pass --ray local") from None
        self.slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote: dict[Callable[..., Any], Any] = {}

    def submit(self, fn: Callable[..., Any], *args: Any, num_cpus: float = 1.0, num_gpus: float = 0.0) -> Future:
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = self.ray.remote(fn)
        ref = remote.options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0).remote(*args)
        future = ref.future()
        future.fxcap_ref = ref  # type: ignore[attr-defined]
        return future

    def cancel(self, future: Future) -> None:
        ref = getattr(future, "fxcap_ref", None)
        if ref is not None and not future.done():
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - best effort: the task may just have finished
                pass

    def close(self) -> None:
        if self.owns and self.ray.is_initialized():
            self.ray.shutdown()
            self.owns = False


def task_runner(workers: int | None = None, ray: str | None = None) -> TaskRunner:
    """The runner for ``workers`` local processes (1: in this process) or a Ray cluster at ``ray``.

    ``workers=None`` means one process per CPU core.
    """
    if ray:
        return RayRunner(ray)
    count = (os.cpu_count() or 1) if workers is None else int(workers)
    if count < 1:
        raise FxcapError(f"workers must be at least 1, not {workers}")
    return TaskRunner() if count == 1 else ProcessRunner(count)
