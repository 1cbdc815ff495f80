"""Writing an output directory so that `kill -9` at any moment loses nothing (docs/outputs.md).

Protocol for a target directory ``P/NAME`` (every step is done while holding the lock):

1. lock ``P/.NAME.snnc-lock`` (``flock``; released by the kernel if the process dies). A second
   writer waits up to ``SNNC_LOCK_TIMEOUT`` seconds (default 60), then refuses (exit 2).
2. recover: siblings left by a writer that died (``.NAME.snnc-new-PID``, ``.NAME.snnc-old-PID``)
   are rolled back: an ``old`` copy is moved back to ``NAME`` if ``NAME`` is missing (a kill
   between the two renames of step 5), else deleted; a ``new`` one is deleted. Each action is
   reported on stderr. Entries whose PID is alive, or that do not look like snnc's, are left
   alone and reported.
3. build the new directory in ``.NAME.snnc-new-PID`` (created with the user's umask), whose
   marker file ``.snnc-writer`` names the PID until it is complete.
4. commit: ``renameat2(RENAME_EXCHANGE)`` swaps new and old in one step where the kernel and
   file system allow it (``NAME`` always holds the old or the new directory); elsewhere two
   renames (``NAME`` -> ``.NAME.snnc-old-PID``, new -> ``NAME``) whose gap step 2 repairs.
5. delete the old copy, unlock.

`SNNC_TEST_KILL_AT=STAGE` makes the writer SIGKILL itself at STAGE (one of `STAGES`, or
``train:commit`` after a run's last checkpoint): the fault-injection hook of the tests;
`SNNC_TEST_PAUSE_AT=STAGE` pauses there until the file ``SNNC_TEST_RESUME`` exists.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from snnc.compiler.core.errors import SnncError

MARKER = ".snnc-writer"
KILL_ENV = "SNNC_TEST_KILL_AT"
PAUSE_ENV = "SNNC_TEST_PAUSE_AT"
NO_EXCHANGE_ENV = "SNNC_TEST_NO_EXCHANGE"
LOCK_TIMEOUT_ENV = "SNNC_LOCK_TIMEOUT"
# Where a writer can be killed (fault injection); `fill:*` stages are raised by the filler.
STAGES = ("locked", "staged", "fill:graph", "fill:artifacts", "filled", "old-moved", "swapped")


def stage(name: str) -> None:
    """Fault-injection point: SIGKILL this process if ``SNNC_TEST_KILL_AT`` names `name`;
    wait until the file ``SNNC_TEST_RESUME`` exists if ``SNNC_TEST_PAUSE_AT`` does."""
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(PAUSE_ENV) == name:  # until the file SNNC_TEST_RESUME exists
        release = Path(os.environ.get("SNNC_TEST_RESUME", "/nonexistent"))
        deadline = time.monotonic() + 300
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def notify(msg: str) -> None:
    """A one-line note on stderr (recovery actions, waiting for a lock)."""
    print(f"snnc: {msg}", file=sys.stderr, flush=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a PID reused by us: that writer is certainly dead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_path(directory: Path) -> Path:
    return directory.with_name(f".{directory.name}.snnc-lock")


_HELD: set[Path] = set()


@contextlib.contextmanager
def locked(directory: str | Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the writer lock of `directory` (see the module doc); SnncError after `timeout`.

    Re-entrant within one process (a training run holds it while it commits)."""
    directory = Path(directory).absolute()
    if directory in _HELD:
        yield
        return
    import fcntl

    if timeout is None:
        timeout = float(os.environ.get(LOCK_TIMEOUT_ENV, "60"))
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SnncError(f"{directory}: cannot create its parent folder ({err.strerror}). "
                        f"Choose a writable -o.") from None
    if not os.access(directory.parent, os.W_OK | os.X_OK):
        raise SnncError(f"{directory.parent}: not writable; choose another -o.")
    path = _lock_path(directory)
    deadline, told = time.monotonic() + timeout, False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _read_pid(path)
            if time.monotonic() >= deadline:
                raise SnncError(
                    f"{directory}: another snnc process (PID {holder}) is writing this "
                    f"directory; waited {timeout:g} s. Wait for it to finish or choose another "
                    f"-o (set {LOCK_TIMEOUT_ENV} to wait longer).") from None
            if not told:
                notify(f"waiting for PID {holder}, which is writing {directory}")
                told = True
            time.sleep(0.05)
            continue
        # the holder before us may have unlinked the file after we opened it: retry then
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _HELD.add(directory)
        stage("locked")
        yield
    finally:
        _HELD.discard(directory)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def _read_pid(path: Path) -> str:
    try:
        return path.read_text().strip() or "?"
    except OSError:
        return "?"


def _siblings(directory: Path, kind: str) -> list[tuple[Path, int]]:
    pat = re.compile(rf"\.{re.escape(directory.name)}\.snnc-{kind}-(\d+)")
    out = []
    for p in directory.parent.iterdir():
        m = pat.fullmatch(p.name)
        if m and p.is_dir() and not p.is_symlink():
            out.append((p, int(m.group(1))))
    return sorted(out)


def _ours(p: Path) -> bool:
    """Whether `p` looks like a directory snnc wrote: its marker, an snnc manifest, or empty."""
    if (p / MARKER).is_file() or not any(p.iterdir()):
        return True
    try:
        return json.loads((p / "manifest.json").read_text()).get("format") == "snnc-output"
    except (OSError, ValueError, AttributeError):
        return False


def recover(directory: Path) -> list[str]:
    """Roll back what writers of `directory` that died left behind (caller holds the lock).

    Returns the notes it printed."""
    notes: list[str] = []

    def say(msg: str) -> None:
        notes.append(msg)
        notify(msg)

    for kind in ("old", "new"):
        for p, pid in _siblings(directory, kind):
            if _alive(pid):
                say(f"{p} belongs to running process {pid}; left alone")
                continue
            if not _ours(p):
                say(f"{p} does not look like an snnc directory; left alone (remove it yourself)")
                continue
            if kind == "old" and not directory.exists():
                os.rename(p, directory)
                say(f"restored {directory} from {p.name} (a writer, PID {pid}, was killed "
                    f"between its two renames)")
            else:
                shutil.rmtree(p)
                say(f"removed {p.name}, left by a writer (PID {pid}) that was killed")
    legacy = re.compile(rf"\.{re.escape(directory.name)}\.(old-\d+|[A-Za-z0-9_]{{8}}\.tmp)")
    for p in sorted(directory.parent.iterdir()):
        if legacy.fullmatch(p.name) and p.is_dir():  # written by snnc before this protocol
            say(f"{p} was left by an older snnc that was interrupted; remove it with "
                f"`rm -r {p}` once no old snnc is running")
    return notes


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap `a` and `b` atomically (Linux renameat2); False where that is not available."""
    if os.environ.get(NO_EXCHANGE_ENV) or not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(directory: str | Path, fill: Callable[[Path], None], *,
                check: Callable[[Path], None] | None = None) -> Path:
    """Write `directory` with `fill(staging_dir)` under the protocol of the module doc.

    `check(directory)` runs under the lock, after recovery and before anything is written (the
    place to refuse overwriting what must not be overwritten). Returns the directory."""
    directory = Path(directory).absolute()
    with locked(directory):
        recover(directory)
        if check is not None:
            check(directory)
        new = directory.with_name(f".{directory.name}.snnc-new-{os.getpid()}")
        if new.exists():
            shutil.rmtree(new)
        os.mkdir(new)  # mode 0o777 minus the umask
        try:
            (new / MARKER).write_text(json.dumps({"pid": os.getpid(),
                                                  "target": str(directory)}) + "\n")
            stage("staged")
            fill(new)
            (new / MARKER).unlink()
            stage("filled")
            _commit(new, directory)
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            raise
    return directory


def _commit(new: Path, directory: Path) -> None:
    if not directory.exists():
        os.rename(new, directory)
        stage("swapped")
        return
    if _exchange(new, directory):  # `new` now holds the old directory
        stage("swapped")
        shutil.rmtree(new)
        return
    old = directory.with_name(f".{directory.name}.snnc-old-{os.getpid()}")
    os.rename(directory, old)
    try:
        stage("old-moved")
        os.rename(new, directory)
    except BaseException:
        os.rename(old, directory)  # put the old one back at once
        raise
    stage("swapped")
    shutil.rmtree(old)


def write_file(path: str | Path, write: Callable[[str], None]) -> None:
    """Write one file atomically: `write(tmp)` fills a temporary sibling (mode 0666 minus the
    umask) that then replaces `path`; a kill leaves the old file and, at worst, a dot-file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666))
    try:
        write(str(tmp))
        from snnc.compiler.core.serialize import umask

        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
