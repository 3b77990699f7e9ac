"""An exclusive lock on a file against other processes (`flock` on a descriptor kept open), re-entrant within this
process: what keeps two paper-trading processes off one ledger."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

_HELD: dict[str, list[int]] = {}
"""Files this process has locked: real path -> [file descriptor holding the lock, open count]."""


class FileLocked(OSError):
    """The file is locked by another process, or cannot be opened; the message says which."""


def lock(path: Path) -> None:
    """Lock `path` (created if missing) against other processes; this process may open it again."""
    key = os.path.realpath(path)
    if key in _HELD:
        _HELD[key][1] += 1
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # a read-only file can be locked too (writing it fails later, saying so)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            raise FileLocked(f"cannot be opened ({e.strerror})") from None
    except OSError as e:
        raise FileLocked(f"cannot be opened ({e.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise FileLocked("in use by another process (another paper.py on this ledger?); wait for it to finish, "
                         "or stop it") from None
    _HELD[key] = [fd, 1]


def unlock(path: Path) -> None:
    """Release one `lock` of `path`; the last release closes the descriptor and frees the file."""
    key = os.path.realpath(path)
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] == 0:
        del _HELD[key]
        os.close(held[0])  # after sqlite's own connection is closed: closing a descriptor drops the process's locks
