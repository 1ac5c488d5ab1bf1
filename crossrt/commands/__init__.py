"""What each `crossrt` command that runs something does: check its inputs and outputs, run, save,
render, one module per command (the commands that read saved results are in
crossrt.commands.reports), on the checks they share (crossrt.commands.common).

Each command takes the parsed flags and the config crossrt.cli built from them, and returns an
exit code (crossrt.errors). Every check that can fail runs before the long work starts. A run
that stops early (Ctrl-C, a diverged loss, a full disk) reaches crossrt.outcome.stopped, which
saves what finished and says how to resume.
"""
