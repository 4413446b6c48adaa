"""Host-side file operations on trees a sandbox can write: never follow a link, anywhere.

Why: a task (or a process it left behind) owns its output and work folders, so it can
rename any folder in them and put a symlink in its place between the host's check and
the host's use. ``O_NOFOLLOW`` on the last component and ``os.path.islink`` filters do
not stop that. Here every path is walked one component at a time from a directory file
descriptor with ``O_NOFOLLOW``, and everything after that (reading, writing, chmod,
chown) is done on the descriptor, never again by name. Scratch paths are canonical
(``sandbox.make_scratch`` resolves its base), so a symlink in one is always planted.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_DEPTH = 64


def _parts(path: str | os.PathLike) -> list[str]:
    text = os.fspath(path)
    if not text.startswith("/"):
        raise ValueError("an absolute path is required")
    parts = [p for p in text.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ValueError("'.' and '..' are not walked")
    return parts


def open_dir(path: str | os.PathLike) -> int:
    """A descriptor for the directory ``path``, reached from / without following any link."""
    fd = os.open("/", DIR_FLAGS)
    try:
        for name in _parts(path):
            nxt = os.open(name, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(path: str | os.PathLike, flags: int = os.O_RDONLY, mode: int = 0o600) -> int:
    """Open the file ``path`` (no link in any component, the last one included)."""
    parts = _parts(path)
    if not parts:
        raise IsADirectoryError(errno.EISDIR, "not a file", os.fspath(path))
    parent = open_dir("/" + "/".join(parts[:-1]))
    try:
        return open_at(parent, parts[-1], flags, mode)
    finally:
        os.close(parent)


def open_at(dir_fd: int, name: str, flags: int = os.O_RDONLY, mode: int = 0o600) -> int:
    """Open ``name`` inside ``dir_fd``; a symlink is refused (ELOOP), a non-regular file too."""
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"not a plain name: {name!r}")
    fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", name)
    os.set_blocking(fd, True)
    return fd


def read_file(path: str | os.PathLike, offset: int = 0, limit: int | None = None) -> bytes:
    fd = open_file(path)
    with os.fdopen(fd, "rb") as f:
        if offset:
            f.seek(offset)
        return f.read() if limit is None else f.read(limit)


def mkdir_at(dir_fd: int, name: str, mode: int, owner: int | None = None,
             exist_ok: bool = False) -> int:
    """Make (or, with ``exist_ok``, reuse) the directory ``name`` in ``dir_fd`` and return a
    descriptor for it; mode and owner are set on the descriptor."""
    created = True
    try:
        os.mkdir(name, mode, dir_fd=dir_fd)
    except FileExistsError:
        if not exist_ok:
            raise
        created = False
    fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    if created:
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, owner, owner)
    return fd


def makedirs_at(root_fd: int, names: list[str], mode: int) -> int:
    """``mkdir -p`` of ``names`` below ``root_fd``, each level reached with O_NOFOLLOW."""
    fd = os.dup(root_fd)
    try:
        for name in names:
            nxt = mkdir_at(fd, name, mode, exist_ok=True)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_at(dir_fd: int, rel: str, mode: int = 0o644) -> int:
    """A writable, truncated descriptor for ``rel`` below ``dir_fd`` (parents made 0755)."""
    parts = [p for p in rel.split("/") if p]
    parent = makedirs_at(dir_fd, parts[:-1], 0o755)
    try:
        fd = open_at(parent, parts[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    finally:
        os.close(parent)
    os.fchmod(fd, mode)
    return fd


def walk_files(root_fd: int, max_files: int = 100_000) -> Iterator[tuple[str, int]]:
    """Every regular file below ``root_fd`` as (relative path, open descriptor; the caller
    closes it), sorted; links, devices and FIFOs are skipped, never followed."""
    count = 0

    def walk(fd: int, prefix: str, depth: int) -> Iterator[tuple[str, int]]:
        nonlocal count
        for name in sorted(os.listdir(fd)):
            try:
                sub = os.open(name, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno != errno.ENOTDIR:
                    continue                         # a link (ELOOP), or gone
                try:
                    f = open_at(fd, name)
                except (OSError, ValueError):
                    continue
                count += 1
                if count > max_files:
                    os.close(f)
                    raise OSError(errno.EFBIG, f"more than {max_files} output files") from None
                yield prefix + name, f
                continue
            try:
                if depth < MAX_DEPTH:
                    yield from walk(sub, f"{prefix}{name}/", depth + 1)
            finally:
                os.close(sub)

    yield from walk(root_fd, "", 0)
