"""Child processes that die with their parent and leave Ctrl-C to it.

A terminal's Ctrl-C sends SIGINT to every process in its foreground group. clbench's
driver handles it (stops the runs, keeps what finished, prints one line); a child that
also got it would print a traceback of its own, and a child whose parent was killed
(SIGKILL, a crash) would otherwise keep training as an orphan. So children are started
with SIGINT blocked (`sigint_blocked_for_children`: the signal mask is inherited through
fork and exec, unlike handlers, and the driver does not lose a Ctrl-C meanwhile: it is
delivered when the block ends), and each child calls `die_with_parent` first thing.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None) -> None:
    """Ignore SIGINT, and have Linux SIGKILL this process when its parent exits.

    `parent_pid`: the parent that started this process; if it already died (before the
    request was made), exit at once. Elsewhere than Linux only SIGINT is ignored.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # orphaned before the request took effect: nobody would stop this process
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # now ignored, not pending


@contextmanager
def sigint_blocked_for_children() -> Iterator[None]:
    """Block SIGINT in this thread while starting child processes; they start with it blocked."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
