"""img2dataset's console output is captured into the log, from the process and its children (real subprocesses)."""

import subprocess
import sys

import pytest

from poolsieve.images.img2dataset_run import captured_output
from tests.unit.test_console import CHATTY


def test_captured_output_goes_to_the_log_not_the_terminal(capfd):
    logged = []
    with captured_output(logged.append):
        print("from the parent")
        subprocess.run([sys.executable, "-c", CHATTY], check=True)
    print("after the block")
    assert logged == [
        "from the parent\nSharding file number 1 of 1\n1it [00:13]\ntotal - success: 0.917"
    ]
    out, err = capfd.readouterr()
    assert out == "after the block\n" and err == ""


def test_captured_output_on_failure_is_logged_and_carried_by_the_error():
    logged = []
    with pytest.raises(RuntimeError, match="boom") as raised, captured_output(logged.append):
        subprocess.run([sys.executable, "-c", "print('worker: HTTP 500 from the server')"])
        raise RuntimeError("boom")
    assert logged == ["worker: HTTP 500 from the server"]
    assert "worker: HTTP 500 from the server" in "\n".join(raised.value.__notes__)
