"""Run one function in a fresh spawned process and bring back its result.

Timing configurations one after another in one process lets allocator, thread-pool and cache
state carry over from one to the next. A spawned child starts clean. The child ignores
Ctrl-C: the parent handles it, ends the child and keeps what finished before.
"""

from __future__ import annotations

import multiprocessing
import signal
import traceback

from .errors import CrossrtError


def _child(conn, fn) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    try:
        conn.send((True, fn()))
    except BaseException as e:  # sent back whole, raised again in the parent
        try:
            conn.send((False, e))
        except Exception:  # an exception that does not pickle: its text is enough
            conn.send((False, CrossrtError("".join(traceback.format_exception_only(e)).strip())))
    finally:
        conn.close()


def isolated(fn):
    """fn() (a picklable callable, e.g. a functools.partial of a top-level function) in a new process."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, fn), daemon=True)
    proc.start()
    send.close()
    try:
        # Poll, so that a child that dies without a word (killed, out of memory) is noticed.
        while not receive.poll(0.2):
            if not proc.is_alive() and not receive.poll(0):
                raise CrossrtError(f"an isolated configuration's process died (exit code {proc.exitcode})")
        ok, value = receive.recv()
        proc.join()
    except BaseException:  # Ctrl-C, SIGTERM or a dead child: end it now, keep nothing of it
        proc.terminate()
        proc.join()
        raise
    finally:
        receive.close()
    if not ok:
        raise value
    return value
