"""Named runtimes: virtual environments the platform's operator builds offline (from a
wheelhouse) and registers on this host; a job or function names one with ``venv``.

Why: tasks otherwise run on the system Python, without the libraries data work needs.
Trust: a spec names a runtime and never a path. The name -> path registry lives in the
data directory (``runtimes.json``, 0600) and only `vallum runtime` on the host, run by
whoever owns the data directory, changes it: no API writes it, so no tenant can.
A registered tree must be a venv that no one but root (or the gateway's user) can
change, outside the data directory, and readable by the sandbox users; the sandbox
binds it read-only at sandbox.RUNTIME_MOUNT with its bin first on PATH.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vallum.compute import sandbox as sbx
from vallum.compute.spec import RUNTIME_NAME, SpecError

FILE = "runtimes.json"


class RuntimeRefused(ValueError):
    """An operator's runtime request that cannot be honoured; the message says why."""


class BuildFailed(RuntimeError):
    """venv or pip failed; the message is pip's last word (e.g. the missing wheel)."""


def check_name(name: str) -> str:
    if not isinstance(name, str) or not RUNTIME_NAME.fullmatch(name):
        raise RuntimeRefused(f"runtime names are 1-64 of [a-z0-9._-], starting with a letter "
                             f"or digit: {name!r}")
    return name


class Registry:
    """The runtimes registered with one data directory (re-read when the file changes)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / FILE
        self._seen: tuple[int, int, int] | None = None
        self._doc: dict[str, str] = {}

    def load(self) -> dict[str, str]:
        """name -> absolute path of every registered runtime."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._seen, self._doc = None, {}
            return {}
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._seen:
            doc = json.loads(self.path.read_text())
            self._doc = {str(k): str(v) for k, v in doc.get("runtimes", {}).items()}
            self._seen = key
        return dict(self._doc)

    def names(self) -> list[str]:
        return sorted(self.load())

    def resolve(self, name: str) -> Path:
        """The runtime's directory; SpecError (UnknownRuntime, 400) naming what exists."""
        path = self.load().get(name)
        if path is None:
            known = ", ".join(self.names()) or "none"
            raise SpecError(f"unknown runtime {name!r} (venv): registered runtimes: {known}",
                            "UnknownRuntime", 400)
        return Path(path)

    def add(self, name: str, path: Path) -> Path:
        """Register ``path`` (checked by check_tree) as ``name``; replaces an older entry."""
        check_name(name)
        path = check_tree(Path(path), self.data_dir)
        with self._locked() as doc:
            doc[name] = str(path)
        return path

    def remove(self, name: str) -> str:
        """Forget a runtime (its files stay); returns the path it had."""
        with self._locked() as doc:
            if name not in doc:
                raise RuntimeRefused(f"no runtime named {name!r}")
            return doc.pop(name)

    @contextmanager
    def _locked(self) -> Iterator[dict[str, str]]:
        """The registry under an exclusive lock, written back atomically (0600)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / (FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._seen = None
            doc = self.load()
            yield doc
            tmp = self.data_dir / (FILE + ".tmp")
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                json.dump({"runtimes": doc}, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            os.close(fd)


def _trusted_owner(st: os.stat_result) -> bool:
    return st.st_uid in (0, os.geteuid())


def check_tree(path: Path, data_dir: Path) -> Path:
    """``path`` resolved, if it may be bound into tenants' sandboxes: a virtual environment,
    outside the data directory (whose keys a bind would expose), reachable and readable by
    the sandbox users, and neither it, nor a directory above it, nor anything in it
    writable by anyone but root or the gateway's user. RuntimeRefused names the problem."""
    if not path.is_absolute():
        raise RuntimeRefused(f"{path}: give an absolute path")
    try:
        real = path.resolve(strict=True)
    except OSError as exc:
        raise RuntimeRefused(f"{path}: {exc.strerror}") from None
    if not real.is_dir() or not (real / "pyvenv.cfg").is_file() or not (
            real / "bin" / "python").exists():
        raise RuntimeRefused(f"{real}: not a virtual environment (no pyvenv.cfg or bin/python)")
    data = Path(data_dir).resolve()
    if real == data or data in real.parents or real in data.parents:
        raise RuntimeRefused(f"{real}: a runtime may not hold or sit in the data directory")
    for above in [*reversed(real.parents), real]:
        st = os.stat(above)
        sticky = bool(st.st_mode & stat.S_ISVTX)
        if not (st.st_mode & 0o001):
            raise RuntimeRefused(f"{above}: not traversable by the sandbox users (o+x)")
        if above != real and st.st_mode & 0o022 and not sticky:
            raise RuntimeRefused(f"{above}: writable by group or others")
        if above != real and not _trusted_owner(st) and not sticky:
            raise RuntimeRefused(f"{above}: owned by uid {st.st_uid}, not root or this user")
    for entry in _walk(real):
        st = os.lstat(entry)
        if not _trusted_owner(st):
            raise RuntimeRefused(f"{entry}: owned by uid {st.st_uid}, not root or this user")
        if stat.S_ISLNK(st.st_mode):
            continue
        if st.st_mode & 0o022:
            raise RuntimeRefused(f"{entry}: writable by group or others")
        if not st.st_mode & 0o004 or (stat.S_ISDIR(st.st_mode) and not st.st_mode & 0o001):
            raise RuntimeRefused(f"{entry}: not readable by the sandbox users")
    return real


def _walk(root: Path) -> Iterator[Path]:
    yield root
    for top, dirs, files in os.walk(root):           # never follows symlinks
        for name in (*dirs, *files):
            yield Path(top) / name


def build(name: str, wheelhouse: Path, requirements: Path, root: Path,
          registry: Registry, python: str | None = None) -> Path:
    """Create ``root/name`` as a venv of the sandbox's interpreter, install ``requirements``
    from ``wheelhouse`` only (no index: offline and reproducible), make it read-only to
    others, and register it. A failed build leaves nothing behind."""
    check_name(name)
    for what, p in (("wheelhouse", wheelhouse), ("requirements", requirements)):
        if not Path(p).exists():
            raise RuntimeRefused(f"{what} {p} does not exist")
    root = Path(root).resolve()
    target = root / name
    if target.exists():
        raise RuntimeRefused(f"{target} exists: remove it or choose another name")
    root.mkdir(parents=True, exist_ok=True)
    interpreter = python or sbx.python()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PIP_NO_INPUT"] = "1"
    # This interpreter's pip installs into the new venv (--python) when it has one: the
    # runtime then holds only what was asked for, and building skips ensurepip.
    own_pip = importlib.util.find_spec("pip") is not None
    pip = ([sys.executable, "-m", "pip", "--python", str(target / "bin" / "python")] if own_pip
           else [str(target / "bin" / "python"), "-m", "pip"])
    steps = [[interpreter, "-m", "venv", *(["--without-pip"] if own_pip else []), str(target)],
             [*pip, "install", "--no-index", "--find-links", str(Path(wheelhouse).resolve()),
              "--no-cache-dir", "--disable-pip-version-check",
              "--requirement", str(Path(requirements).resolve())]]
    try:
        for argv in steps:
            done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0:
                said = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
                raise BuildFailed(f"building runtime {name!r} failed: "
                                  f"{said[-1].strip() if said else argv[2]}")
        _relocate_scripts(target)
        _publish(target)
        return registry.add(name, target)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def _relocate_scripts(target: Path) -> None:
    """Entry-point scripts name the interpreter by its build path; in the sandbox the
    runtime sits at RUNTIME_MOUNT, so their shebang says that."""
    built = f"#!{target}/bin/".encode()
    mounted = f"#!{sbx.RUNTIME_MOUNT}/bin/".encode()
    for script in (target / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        if data.startswith(built):
            script.write_bytes(mounted + data[len(built):])


def _publish(target: Path) -> None:
    """Readable (and where executable, runnable) by everyone, writable by its owner only."""
    for entry in _walk(target):
        st = os.lstat(entry)
        if stat.S_ISLNK(st.st_mode):
            continue
        if stat.S_ISDIR(st.st_mode) or st.st_mode & 0o111:
            os.chmod(entry, 0o755)  # noqa: S103 - a runtime is public, read-only code
        else:
            os.chmod(entry, 0o644)
