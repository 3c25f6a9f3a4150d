"""Dataset locations on any filesystem: local paths, ``file://``, ``s3://``, ``gs://``, ``hdfs://``, ``memory://``.

:func:`locate` turns what a user typed into a :class:`Location`: a pyarrow filesystem and a path in it.
Local paths and ``file://`` URIs use the local filesystem (and keep every local fast path of the dataset
code); ``s3://``, ``gs://``/``gcs://``, ``hdfs://`` and ``abfs://`` use pyarrow's native filesystems; any
other scheme that fsspec knows (``memory://``, ``az://``, ``http://`` ...) is wrapped with
``pyarrow.fs.FSSpecHandler``.

Other schemes (``ftp://``, typos) are refused in one line that lists the supported ones
(:data:`SUPPORTED_SCHEMES`). Every first contact with a remote store (opening its filesystem, asking
for a file's or folder's details) gives up after ``FXCAP_REMOTE_TIMEOUT`` seconds (default
:data:`DEFAULT_TIMEOUT_S`) with a one-line error, instead of hanging without a network.

Credentials and endpoints come from the usual places: for S3 the ``AWS_*`` environment variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL`` for an
S3-compatible server such as MinIO), ``~/.aws`` or an instance role; URI query options work too
(``s3://bucket/ds?endpoint_override=127.0.0.1:9000&scheme=http``). Object stores have no folders and no
atomic rename: a "folder" is a key prefix, and writers here publish a dataset by writing its manifest last.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import threading
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from fxcap.errors import DatasetError
from fxcap.io import atomic_write_bytes

PYARROW_SCHEMES = frozenset({"s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss"})
"""URI schemes served by pyarrow's own filesystems."""

FSSPEC_SCHEMES = frozenset({"memory", "az", "adl", "http", "https"})
"""URI schemes served through fsspec (with its plugin installed: adlfs for ``az://``)."""

SUPPORTED_SCHEMES = ("file",) + tuple(sorted(PYARROW_SCHEMES)) + tuple(sorted(FSSPEC_SCHEMES))
"""Every URI scheme a dataset location may use (besides plain local paths)."""

DEFAULT_TIMEOUT_S = 20.0
"""Seconds a remote store may take to answer a first request (``FXCAP_REMOTE_TIMEOUT`` overrides it)."""

PROCESS_LOCAL_PROTOCOLS = frozenset({"memory"})
"""fsspec protocols whose files live in one process only (other processes cannot see them)."""

CHUNK_BYTES = 8 << 20
"""Bytes per read when streaming a file (hashing, downloading)."""

T = TypeVar("T")

_FILESYSTEMS: dict[tuple[str, ...], pafs.FileSystem] = {}
_LOCK = threading.Lock()
_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE")


def is_uri(target: str | os.PathLike[str]) -> bool:
    """True for ``scheme://...`` strings (a Windows drive ``C:\\`` is not a URI)."""
    text = os.fspath(target)
    scheme = urlsplit(text).scheme if isinstance(text, str) and "://" in text else ""
    return len(scheme) > 1


def clear_filesystem_cache() -> None:
    """Forget the filesystems opened so far (e.g. after changing credentials or endpoints)."""
    with _LOCK:
        _FILESYSTEMS.clear()


def _pyarrow_filesystem(scheme: str, netloc: str, query: str) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, root path)`` for ``scheme://netloc``; cached per endpoint environment."""
    key = (scheme, netloc, query) + tuple(os.environ.get(v, "") for v in _ENDPOINT_VARIABLES)
    uri = f"{scheme}://{netloc}" + (f"?{query}" if query else "")
    with _LOCK:
        cached = _FILESYSTEMS.get(key)
        if cached is None:
            try:
                cached, _ = with_timeout(lambda: open_pyarrow_filesystem(uri), f"opening {uri}")
            except (pa.ArrowException, OSError, ValueError) as exc:
                raise DatasetError(f"cannot open {uri} ({_short(exc)}); check the URI, the credentials and the endpoint") from None
            _FILESYSTEMS[key] = cached
    root = netloc if scheme not in ("hdfs", "viewfs") else ""
    return cached, root


def open_pyarrow_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """``pyarrow.fs.FileSystem.from_uri`` (a function of its own so tests can stand in for a store)."""
    return pafs.FileSystem.from_uri(uri)


def remote_timeout() -> float:
    """Seconds a remote request may take: ``FXCAP_REMOTE_TIMEOUT`` or :data:`DEFAULT_TIMEOUT_S`."""
    text = os.environ.get("FXCAP_REMOTE_TIMEOUT", "")
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise DatasetError(f"FXCAP_REMOTE_TIMEOUT must be a positive number of seconds, not {text!r}")
    return value


def with_timeout(call: Callable[[], T], what: str) -> T:
    """``call()`` in a helper thread; a one-line :class:`DatasetError` when it takes longer than
    :func:`remote_timeout` (the thread is left to finish on its own: a daemon, it does not hold the
    process). Exceptions of ``call`` propagate."""
    seconds = remote_timeout()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=run, name="fxcap-remote", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise DatasetError(
            f"{what}: no answer within {seconds:g} s; check the network, the endpoint and the credentials "
            "(or wait longer: FXCAP_REMOTE_TIMEOUT=SECONDS)"
        )
    if "error" in box:
        raise box["error"]
    return box["value"]


def _fsspec_filesystem(uri: str) -> tuple[pafs.FileSystem, str, str]:
    """``(filesystem, path, protocol)`` of a URI served by fsspec."""
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec ships with most stacks
        raise DatasetError(f"{uri}: no filesystem for this scheme; install fsspec and its plugin for it") from None
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise DatasetError(f"{uri}: no filesystem for this scheme ({_short(exc)}); install its fsspec plugin (e.g. gcsfs, adlfs)") from None
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path, protocol


class Location:
    """A file or folder on some filesystem: ``fs`` (pyarrow), ``path`` (inside ``fs``) and the ``uri`` a user sees.

    ``location / "data/x.parquet"`` is a child. Local locations keep the path as given (relative or not),
    so messages and manifests read as before.
    """

    def __init__(self, uri: str, fs: pafs.FileSystem, path: str, *, local: bool, protocol: str, query: str = ""):
        self.uri = uri
        self.fs = fs
        self.path = path
        self.is_local = local
        self.protocol = protocol
        self.query = query

    # -- naming -------------------------------------------------------------------------------------------
    def __str__(self) -> str:
        return self.uri + (f"?{self.query}" if self.query else "")

    def __repr__(self) -> str:
        return f"Location({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __truediv__(self, rel: str) -> "Location":
        rel = str(rel).strip("/")
        if not rel:
            return self
        if self.is_local:
            child = Path(self.uri) / rel
            return Location(str(child), self.fs, _local_fs_path(child), local=True, protocol="file")
        return Location(f"{self.uri.rstrip('/')}/{rel}", self.fs, posixpath.join(self.path, rel), local=False,
                        protocol=self.protocol, query=self.query)

    @property
    def name(self) -> str:
        """Last component (``od3`` for ``s3://bucket/datasets/od3``)."""
        return posixpath.basename(self.path.rstrip("/")) or self.path

    @property
    def parent(self) -> "Location":
        if self.is_local:
            parent = Path(self.uri).parent
            return Location(str(parent), self.fs, _local_fs_path(parent), local=True, protocol="file")
        return Location(self.uri.rstrip("/").rsplit("/", 1)[0], self.fs, posixpath.dirname(self.path.rstrip("/")),
                        local=False, protocol=self.protocol, query=self.query)

    @property
    def local_path(self) -> Path:
        """The local :class:`Path` (only for local locations)."""
        if not self.is_local:
            raise DatasetError(f"{self} is not on the local filesystem")
        return Path(self.uri)

    @property
    def process_local(self) -> bool:
        """True when other processes cannot see these files (``memory://``): work must stay in this process."""
        return self.protocol in PROCESS_LOCAL_PROTOCOLS

    def as_target(self) -> str | Path:
        """What to hand to code that takes paths: the local :class:`Path` or the URI string."""
        return self.local_path if self.is_local else str(self)

    # -- queries ------------------------------------------------------------------------------------------
    def _info(self) -> pafs.FileInfo:
        try:
            if self.is_local:
                return self.fs.get_file_info(self.path)
            return with_timeout(lambda: self.fs.get_file_info(self.path), f"reaching {self}")
        except (pa.ArrowException, OSError) as exc:
            raise DatasetError(f"cannot reach {self} ({_short(exc)}); check the URI, the credentials and the endpoint") from None

    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._info().type == pafs.FileType.Directory

    def size(self) -> int | None:
        """Bytes of a file, ``None`` when it does not exist."""
        info = self._info()
        return int(info.size) if info.type == pafs.FileType.File else None

    def files(self) -> dict[str, int]:
        """Every file below this folder: ``{relative posix path: bytes}`` (empty when there is none)."""
        if self.is_local and not self.local_path.is_dir():
            return {}
        selector = pafs.FileSelector(self.path, recursive=True, allow_not_found=True)
        try:
            infos = self.fs.get_file_info(selector) if self.is_local else with_timeout(lambda: self.fs.get_file_info(selector), f"listing {self}")
        except (pa.ArrowException, OSError) as exc:
            raise DatasetError(f"cannot list {self} ({_short(exc)}); check the URI, the credentials and the endpoint") from None
        base = self.path.rstrip("/") + "/"
        return {i.path[len(base):]: int(i.size) for i in infos if i.type == pafs.FileType.File and i.path.startswith(base)}

    # -- reading ------------------------------------------------------------------------------------------
    def open_input(self) -> pa.NativeFile:
        """A random-access reader (Parquet footers, row groups)."""
        return self.fs.open_input_file(self.path)

    def open_stream(self) -> pa.NativeFile:
        """A sequential reader."""
        return self.fs.open_input_stream(self.path)

    def read_bytes(self) -> bytes:
        with self.open_stream() as handle:
            return handle.read()

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def sha256(self) -> str:
        """SHA-256 (hex) of the file, streamed in chunks."""
        digest = hashlib.sha256()
        with self.open_stream() as handle:
            while block := handle.read(CHUNK_BYTES):
                digest.update(block)
        return digest.hexdigest()

    def download(self, target: Path) -> str:
        """Copy the file to the local ``target`` (streamed) and return its SHA-256."""
        digest = hashlib.sha256()
        target.parent.mkdir(parents=True, exist_ok=True)
        with self.open_stream() as source, open(target, "wb") as out:
            while block := source.read(CHUNK_BYTES):
                digest.update(block)
                out.write(block)
        return digest.hexdigest()

    # -- writing ------------------------------------------------------------------------------------------
    def write_bytes(self, data: bytes) -> None:
        """Write a whole file: atomically (temp file + rename) locally, one PUT on an object store."""
        if self.is_local:
            atomic_write_bytes(self.local_path, data)
            return
        with self.fs.open_output_stream(self.path) as out:
            out.write(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    def upload(self, source: Path) -> None:
        """Copy the local file ``source`` here (streamed)."""
        if self.is_local:
            self.local_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, self.local_path)
            return
        with open(source, "rb") as handle, self.fs.open_output_stream(self.path) as out:
            while block := handle.read(CHUNK_BYTES):
                out.write(block)

    def delete(self) -> None:
        """Remove this file (missing is fine)."""
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            pass
        except (pa.ArrowException, OSError) as exc:
            if self.exists():
                raise DatasetError(f"cannot delete {self} ({_short(exc)})") from None


def _local_fs_path(path: Path) -> str:
    return Path(os.path.abspath(path)).as_posix()


def locate(target: "str | os.PathLike[str] | Location") -> Location:
    """The :class:`Location` of a local path or a URI (see the module docstring for the schemes).

    Raises :class:`DatasetError` for an unknown scheme or a filesystem that cannot be opened.
    """
    if isinstance(target, Location):
        return target
    text = os.fspath(target)
    if not is_uri(text):
        return Location(str(Path(text)), pafs.LocalFileSystem(), _local_fs_path(Path(text)), local=True, protocol="file")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in ("file", "local"):
        path = Path(parts.path if not parts.netloc else f"//{parts.netloc}{parts.path}")
        return Location(str(path), pafs.LocalFileSystem(), _local_fs_path(path), local=True, protocol="file")
    if scheme not in PYARROW_SCHEMES and scheme not in FSSPEC_SCHEMES:
        raise DatasetError(
            f"{text}: no filesystem for {scheme}:// here; use a local path or one of "
            + ", ".join(f"{s}://" for s in SUPPORTED_SCHEMES)
        )
    if scheme in PYARROW_SCHEMES:
        fs, root = _pyarrow_filesystem(scheme, parts.netloc, parts.query)
        path = posixpath.join(root, parts.path.lstrip("/")).rstrip("/") if root else parts.path.rstrip("/")
        return Location(f"{scheme}://{parts.netloc}{parts.path}".rstrip("/"), fs, path, local=False, protocol=scheme,
                        query=parts.query)
    fs, path, protocol = _fsspec_filesystem(text.split("?", 1)[0])
    return Location(text.split("?", 1)[0].rstrip("/"), fs, path.rstrip("/"), local=False, protocol=protocol)


def location_text(target: "str | os.PathLike[str] | Location") -> str:
    """How a dataset location is written in run folders and messages: ``str(Path(p))`` locally, the URI otherwise."""
    return str(locate(target))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
