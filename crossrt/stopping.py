"""Ctrl-C and SIGTERM that reach a model run stuck in native code.

Python raises KeyboardInterrupt only when the main thread comes back to the interpreter, and a
model that never ends (an endless Loop) never hands it back. So while a command runs, a watcher
thread is woken by the signal itself (signal.set_wakeup_fd) and asks every run in flight to
stop, through the stops the runtimes register (ONNX Runtime's RunOptions.terminate); the run
fails at once and the main thread takes the signal as it always does, saving what finished. A
runtime that cannot be asked (OpenVINO's synchronous infer, TorchScript) still holds the main
thread: GRACE_S after the signal, or at a second one, the process ends with exit code 130 and
says that what the run had not yet saved is lost.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress

from .errors import EXIT_INTERRUPTED

GRACE_S = 5.0  # how long the main thread has to take a signal before the process is ended

_stops: list[Callable[[], None]] = []
_taken = [float("-inf")]  # when the main thread last took a signal (time.monotonic)


def on_signal(stop: Callable[[], None]) -> None:
    """stop() is called from the watcher thread when a signal comes: it must only ask runs to end."""
    _stops.append(stop)


def took_signal() -> None:
    """The main thread's signal handler calls this: the signal reached Python."""
    _taken[0] = time.monotonic()


def _stop_runs() -> None:
    for stop in _stops:
        with suppress(Exception):  # one runtime's failure to stop must not keep the others running
            stop()


def _end_now() -> None:
    os.write(
        sys.stderr.fileno(),
        b"crossrt: interrupted; the model's run did not return, so crossrt ends now"
        b" (what this run had not saved yet is lost)\n",
    )
    os._exit(EXIT_INTERRUPTED)


def _watch(fd: int) -> None:
    """Until fd's writer closes: on each signal byte, stop the runs, then end the process if the
    main thread has not taken a signal within GRACE_S (or a second byte comes first)."""
    waiting = deadline = None  # the signal the main thread has yet to take: taken once _taken passes waiting
    woke = time.monotonic()  # when this thread last came back from waiting: a byte read next came after it
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready = select.select([fd], [], [], left)[0]
        before, woke = woke, time.monotonic()
        if waiting is not None and _taken[0] >= waiting:
            waiting = deadline = None  # taken: the main thread is stopping as it should
        if not ready:
            if waiting is not None:
                _end_now()
            continue
        if not os.read(fd, 64):
            return
        if waiting is not None:  # a second signal while the first still waits
            _end_now()
        # The handler runs after the byte is written, which is after this thread last woke.
        waiting, deadline = before, woke + GRACE_S
        _stop_runs()


@contextmanager
def watched():
    """The watcher, for the time a command runs (main thread only; elsewhere, nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read, write = os.pipe()
    os.set_blocking(write, False)
    previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    watcher = threading.Thread(target=_watch, args=(read,), name="crossrt-stopping", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        os.close(write)  # the watcher reads the end of the pipe and returns
        watcher.join()
        os.close(read)
