"""``dagster dev`` that stops on SIGTERM (and SIGINT) wherever it was started::

    poolsieve dev -w workspace.yaml                                        # production
    poolsieve dev -m poolsieve_demo.definitions -h 127.0.0.1 -p 3000       # make dev
    python -m poolsieve.pipelines.dev ...                                  # the same, no CLI

Every argument goes to ``dagster dev`` unchanged. Why a launcher: a shell starts background jobs
with SIGINT ignored, an ignored signal is inherited, Python then leaves SIGINT ignored, and
Dagster maps SIGTERM onto SIGINT's handler, so a ``dagster dev`` started in the background from a
script ignores both and only SIGKILL stops it, leaving its webserver, daemon and code server
behind. This process puts SIGINT and SIGTERM back to their defaults and replaces itself with
``dagster dev`` (exec: same PID, no second process to forward signals through, Ctrl-C in a
terminal unchanged), which then turns either signal into its own clean shutdown of its children.
"""

from __future__ import annotations

import os
import signal
import sys

#: the signals ``dagster dev`` shuts down on; SIGHUP is left as found (nohup ignores it on purpose)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def dagster_dev_command(args: list[str]) -> list[str]:
    """``dagster dev`` with ``args``, run by this interpreter (the environment's own Dagster)."""
    return [sys.executable, "-m", "dagster", "dev", *args]


def restore_stop_signals() -> None:
    """SIGINT and SIGTERM at their defaults, whatever this process inherited (exec keeps them)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def main(argv: list[str] | None = None) -> None:
    command = dagster_dev_command(sys.argv[1:] if argv is None else argv)
    restore_stop_signals()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
