"""The plugin's entry point: a call racing Terraform's Shutdown ends quietly, anything else still shows."""

from __future__ import annotations

import threading

import pytest

from provider.main import _quiet_late_calls


def run_in_thread(exc: BaseException) -> None:
    def boom():
        raise exc

    hook, threading.excepthook = threading.excepthook, _quiet_late_calls
    try:
        t = threading.Thread(target=boom)
        t.start()
        t.join()
    finally:
        threading.excepthook = hook


@pytest.mark.parametrize("message", ["cannot schedule new futures after shutdown",
                                     "cannot schedule new futures after interpreter shutdown"])
def test_a_call_after_the_server_or_python_shut_down_leaves_no_traceback(capfd, message):
    run_in_thread(RuntimeError(message))
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("exc", [RuntimeError("something else"), ValueError("after shutdown")])
def test_any_other_thread_error_is_still_reported(capfd, exc):
    run_in_thread(exc)
    err = capfd.readouterr().err
    assert "Traceback" in err and str(exc) in err
