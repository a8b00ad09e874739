"""Child processes that die with their parent: Linux's parent-death signal.

A process killed by SIGKILL (the OOM killer, ``kill -9``) cannot stop its children. Those that
write into the lake on its behalf would go on writing after it died, into folders a re-run is
starting over in: the CLIP trainer (checkpoints, out.log) and img2dataset's worker processes
(shard tars and parquet files under the download step's temporary folder). Each calls
:func:`die_with_parent` as it starts, so the kernel SIGKILLs it when its parent exits, however
the parent ends. The signal is tied to the parent *thread* that started the child (prctl(2)):
both callers' children are started by a thread that outlives them (it waits for the trainer;
img2dataset's pool threads live until the pool is terminated).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> bool:
    """Have this process SIGKILLed when ``parent_pid`` (its parent) exits; if it has exited
    already (this process was re-parented before asking), die now. False where the system has
    no parent-death signal (not Linux): nothing is set up there."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    if os.getppid() != parent_pid:  # the parent died before the request: no signal will come
        os.kill(os.getpid(), signal.SIGKILL)
    return True
