"""Run one function in a fresh process and bring back its result.

Timing configurations one after another in one process lets allocator, thread-pool and cache
state carry over from one to the next. A fresh child starts clean.

The child runs in a session of its own, so a Ctrl-C in the terminal (sent to the terminal's
process group) reaches only the parent, which kills the child and keeps what finished before:
the child never shows a traceback of its own, even when the signal comes while it starts. It
starts with the parent's import path in place of the working folder (a `crossrt` or any other
module there is not run), and is handed the function as bytes, over a socket of its own.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import traceback
from contextlib import contextmanager, suppress

from .errors import CrossrtError

SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _child_main(fd: int) -> None:
    """In the child: read the function, run it, send back (True, result) or (False, exception)."""
    with socket.socket(fileno=fd) as sock, sock.makefile("rwb") as pipe:
        try:
            fn = pickle.load(pipe)
        except (EOFError, pickle.UnpicklingError):
            # The parent stopped before it handed the function over: a Ctrl-C that Python raised
            # in Popen's own code, after the fork, before the parent knew this child. Nothing to run.
            return
        try:
            reply = pickle.dumps((True, fn()))
        except BaseException as e:  # sent back whole, raised again in the parent
            try:
                reply = pickle.dumps((False, e))
            except Exception:  # an exception that does not pickle: its text is enough
                reply = pickle.dumps((False, CrossrtError("".join(traceback.format_exception_only(e)).strip())))
        with suppress(OSError):  # the parent is gone or stopped listening: nothing to report to
            pipe.write(reply)
            pipe.flush()


@contextmanager
def _held_signals():
    """Ctrl-C and SIGTERM held back while the child is created (so that it is never half made
    and unknown to us); one that came meanwhile is raised right after."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def isolated(fn):
    """fn() (a picklable callable, e.g. a functools.partial of a top-level function) in a new process."""
    payload = pickle.dumps(fn)
    mine, theirs = socket.socketpair()
    path = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]  # the parent's, resolved here
    boot = (
        f"import sys; sys.path[:] = {path!r}; from crossrt.isolate import _child_main; _child_main({theirs.fileno()})"
    )
    proc = None
    try:
        with _held_signals():
            proc = subprocess.Popen(
                [sys.executable, "-c", boot],
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                stdin=subprocess.DEVNULL,
            )
        theirs.close()
        with suppress(BrokenPipeError, ConnectionResetError):  # a child that died at once: said below
            mine.sendall(payload)
            mine.shutdown(socket.SHUT_WR)
        # Wait, and notice a child that dies without a word (killed, out of memory).
        while not select.select([mine], [], [], 0.2)[0]:
            if proc.poll() is not None and not select.select([mine], [], [], 0)[0]:
                break
        with mine.makefile("rb") as pipe:
            try:
                ok, value = pickle.load(pipe)
            except (EOFError, pickle.UnpicklingError):
                proc.wait()
                raise CrossrtError(f"an isolated configuration's process died (exit code {proc.returncode})") from None
        proc.wait()
    except BaseException:  # Ctrl-C, SIGTERM or a dead child: end it now, keep nothing of it
        if proc is not None:
            with suppress(OSError):
                proc.kill()
            proc.wait()
        raise
    finally:
        theirs.close()
        mine.close()
    if not ok:
        raise value
    return value
