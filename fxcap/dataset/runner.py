"""Running the write tasks of a dataset build: in this process, in worker processes or as Ray tasks
(:mod:`fxcap.parallel`). Each task writes its own files, so the bytes never depend on where it ran."""

from __future__ import annotations

import os
from concurrent.futures import as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence

from fxcap.dataset.remote import Location
from fxcap.errors import DatasetError
from fxcap.parallel import TaskRunner, task_runner, unwrap_error

AUTO_PARALLEL_BYTES = 1 << 30
"""With ``workers=None``, builds with at least this much audio (bytes, input + target) use worker processes.

Below it a single process is as fast: starting workers costs about a second, and one process already
keeps about two cores busy (pyarrow compresses on its own threads)."""

Job = tuple[Callable[..., list[dict[str, Any]]], Any, str]
"""A write task: ``(function, task, label)``; ``function(task, root_uri)`` returns the entries of the files it wrote."""


def choose_runner(root: Location, tasks: int, workers: int | None, ray: str | None, audio_bytes: int) -> TaskRunner:
    """Where ``tasks`` write tasks into ``root`` run: here (one task, or a process-local store such as
    ``memory://``), as Ray tasks (``ray``), or in ``workers`` processes (``None``: one per core for
    builds of at least :data:`AUTO_PARALLEL_BYTES` of audio, ``audio_bytes``)."""
    if root.process_local or tasks <= 1:
        return TaskRunner()
    if ray:
        return task_runner(ray=ray)
    if workers is None:
        workers = (os.cpu_count() or 1) if audio_bytes >= AUTO_PARALLEL_BYTES else 1
    return task_runner(max(1, min(int(workers), tasks)))


def run_jobs(jobs: Sequence[Job], root: Location, workers: int | None, ray: str | None, audio_bytes: int,
             progress: Callable[[str], None] | None) -> list[dict[str, Any]]:
    """Run every job writing under ``root`` and return their file entries (in completion order).

    ``progress`` gets each finished job's label. The first error cancels the jobs not yet started and
    is raised as the task raised it (a worker that died: one line suggesting fewer workers).
    """
    entries: list[dict[str, Any]] = []
    with choose_runner(root, len(jobs), workers, ray, audio_bytes) as runner:
        futures = {runner.submit(fn, task, str(root)): label for fn, task, label in jobs}
        try:
            for future in as_completed(futures):
                try:
                    entries += future.result()
                except BrokenProcessPool:
                    raise DatasetError("a worker process died while writing the dataset (out of memory?); "
                                       "build again with fewer --workers") from None
                except BaseException as exc:
                    raise unwrap_error(exc) from None
                if progress is not None:
                    progress(futures[future])
        except BaseException:
            for future in futures:
                runner.cancel(future)
            raise
    return entries
