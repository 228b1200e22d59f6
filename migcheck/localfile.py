"""Files the operator names on this machine (an inventory, a snapshot, an SSH config): read safely.

Only regular files, and only up to a limit: /dev/zero would fill the memory, a FIFO would
block the read forever. Both are refused before anything is read.
"""

from __future__ import annotations

import os
import stat

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


class NotAFile(OSError):
    """Not a regular file, or larger than the limit: the message says which (without the path)."""


def _refuse_unless_regular(fd: int) -> None:
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        raise NotAFile(f"not a regular file ({_KINDS.get(stat.S_IFMT(mode), 'a special file')})")


def unreadable(path: str | os.PathLike) -> str | None:
    """Why path cannot be read as a file (without the path: 'No such file or directory'), or None.

    For a file named now and read later (an ssh_config read at each connection): the operator
    hears of a typo at once, instead of migcheck going on as if the option had not been given.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return exc.strerror or str(exc)
    try:
        _refuse_unless_regular(fd)
    except NotAFile as exc:
        return str(exc)
    finally:
        os.close(fd)
    return None


def read_text(path: str | os.PathLike, limit: int, errors: str = "strict") -> str:
    """The file's text (UTF-8), or OSError: NotAFile, FileNotFoundError, PermissionError..."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # O_NONBLOCK: opening a FIFO must not wait
    try:
        _refuse_unless_regular(fd)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise NotAFile(f"larger than {limit} bytes")
    return b"".join(chunks).decode("utf-8", errors)
