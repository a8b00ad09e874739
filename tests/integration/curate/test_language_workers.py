"""Language worker processes (curation.language_workers) die with the run that started them."""

from __future__ import annotations

import subprocess
import sys

import psutil

#: a parent that starts two language worker processes, says so, and waits
PARENT = """
import sys, time
from poolsieve.curate.language import LanguageIdentifier
if __name__ == "__main__":
    with LanguageIdentifier(["fasttext"], 2, min_texts=1) as languages:
        languages.start(["a dog", "a cat", "un chat"])()
        print("started", flush=True)
        time.sleep(120)
"""


def test_worker_processes_die_with_their_parent_killed_by_sigkill(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 2
    finally:
        proc.kill()
        proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=20)
    for child in alive:
        child.kill()
    assert not alive, [c.cmdline() for c in alive]
