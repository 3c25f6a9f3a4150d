"""Publishing a dataset build so that readers see the whole new dataset or none.

Locally (:func:`publish_local`) the files are written into a temporary folder beside the output,
renamed into place at the end (an old dataset is moved aside first and removed once the new one is
in place), under the output's lock; a killed build's leftovers are cleaned by the next one. On an
object store (:func:`publish_remote`, no rename there) the files are written under their final names,
``dataset.json`` last, with a ``.fxcap-building`` marker while it runs.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from fxcap.dataset.card import render_card
from fxcap.dataset.manifest import CARD_NAME, MANIFEST_NAME
from fxcap.dataset.remote import Location, locate
from fxcap.errors import DatasetError, FxcapError
from fxcap.io import atomic_write_json, atomic_write_text, json_text
from fxcap.locking import building_pattern, folder_lock, pid_alive, remove_stale

log = logging.getLogger(__name__)

BUILDING_MARKER = ".fxcap-building"
"""Object written first (and removed last) when building into an object store: marks an unfinished build."""

WriteFiles = Callable[[Location], dict[str, Any]]
"""Writes every data file of the dataset under a folder and returns its manifest (``dataset.json``)."""


def publish_local(out: Path, overwrite: bool, write: WriteFiles) -> Path:
    """Build into the local folder ``out`` with ``write`` (see the module docstring); returns ``out``.

    Refuses a file at ``out``, a folder that is not a dataset, and (without ``overwrite``) a dataset.
    """
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} is a file; choose a folder for --out")
    with folder_lock(out, "build-dataset"):  # one builder per --out: a second one stops here
        recover_interrupted(out)
        if out.exists() and any(out.iterdir()):
            if not (out / MANIFEST_NAME).is_file():
                raise DatasetError(f"{out} exists and is not an fxcap dataset; choose another --out")
            if not overwrite:
                raise DatasetError(f"{out} already holds a dataset; pass --force to replace it or choose another --out")
        tmp = out.parent / f".{out.name}.building-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            manifest = write(locate(tmp))
            atomic_write_json(tmp / MANIFEST_NAME, manifest)
            atomic_write_text(tmp / CARD_NAME, render_card(manifest))
            move_into_place(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out


def publish_remote(dest: Location, overwrite: bool, write: WriteFiles) -> Location:
    """Build into an object store with ``write``: data files first, ``dataset.json`` last; returns ``dest``.

    Files of a replaced dataset that the new one does not hold are deleted at the end (its ``.cache/`` kept).
    """
    if dest.is_file():
        raise DatasetError(f"{dest} is a file; choose a folder for --out")
    before = dest.files()
    if MANIFEST_NAME in before and not overwrite:
        raise DatasetError(f"{dest} already holds a dataset; pass --force to replace it or choose another --out")
    if before and MANIFEST_NAME not in before:
        if BUILDING_MARKER not in before:
            raise DatasetError(f"{dest} exists and is not an fxcap dataset; choose another --out")
        if not overwrite:
            raise DatasetError(f"{dest} holds an unfinished build; pass --force to replace it or choose another --out")
    (dest / BUILDING_MARKER).write_text("an fxcap dataset build is writing here; dataset.json is written last\n")
    (dest / MANIFEST_NAME).delete()  # unpublish the old dataset before its files are replaced
    manifest = write(dest)
    (dest / CARD_NAME).write_text(render_card(manifest))
    (dest / MANIFEST_NAME).write_text(json_text(manifest))
    keep = {f["path"] for f in manifest["files"]} | {MANIFEST_NAME, CARD_NAME}
    for rel in sorted(set(before) - keep):
        if not rel.startswith(".cache/") and rel != BUILDING_MARKER:
            (dest / rel).delete()  # left over from the replaced dataset
    (dest / BUILDING_MARKER).delete()
    return dest


def recover_interrupted(out: Path) -> None:
    """Clean what a killed build into ``out`` left beside it (its ``.building-PID`` folder); a dataset it had
    moved aside (``.old-PID``) but not yet replaced is moved back first. Call it holding ``out``'s lock."""
    if not out.exists():
        for old in sorted(out.parent.glob(f".{out.name}.old-*")):
            pid = old.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not pid_alive(int(pid)) and (old / MANIFEST_NAME).is_file():
                os.replace(old, out)
                log.warning("note: moved back the dataset an interrupted build had set aside: %s", out)
                break
    remove_stale(out.parent, (building_pattern(out.name),))


def move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished build folder to ``out``, replacing an old dataset only once the new one is complete."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError as exc:
        if old is not None:
            os.replace(old, out)
        raise FxcapError(f"cannot move the new dataset into {out}: {exc}") from exc
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
