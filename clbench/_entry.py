"""The `clbench` console script: a Ctrl-C is one line from the very first instant.

Importing the command line (argparse, pydantic, pluggy, tabulate) takes ~0.15 s; a
Ctrl-C then would print Python's traceback. This module imports nothing heavy and, when
it is loaded, makes SIGINT print one line and exit; once the command line is imported,
SIGINT raises KeyboardInterrupt again, which `clbench.cli.main` handles. Only the
interpreter's own start-up (~20 ms, before any clbench code runs) is outside its reach.

After an interrupt (and for a Ctrl-C during interpreter shutdown) the process exits at
once, skipping atexit's orderly goodbyes to helper processes (closing the harness process
takes seconds): what finished is already written, workers are already stopped, and every
helper process dies with its parent (`clbench.signals`), or sees its pipe close.
"""

import os
import signal
import sys

EXIT_INTERRUPTED = 130


def _exit_now(code: int) -> None:
    """Exit without waiting for helper processes to wind down (they die with this one)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _interrupted_while_starting(number, frame) -> None:
    try:
        sys.stderr.write("clbench: interrupted\n")
    finally:
        _exit_now(EXIT_INTERRUPTED)


_PREVIOUS = signal.getsignal(signal.SIGINT)
if _PREVIOUS is signal.default_int_handler:  # not when started with SIGINT ignored (nohup, `&`)
    signal.signal(signal.SIGINT, _interrupted_while_starting)


def main() -> int:
    try:
        from .cli import main as cli_main

        if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
            # A Ctrl-C that lands inside this call runs the handler being installed
            # (Python looks handlers up when it runs them): KeyboardInterrupt, caught below.
            signal.signal(signal.SIGINT, _PREVIOUS)
        code = cli_main()
        if code == EXIT_INTERRUPTED:
            _exit_now(code)
        if signal.getsignal(signal.SIGINT) is _PREVIOUS and _PREVIOUS is signal.default_int_handler:
            signal.signal(signal.SIGINT, lambda number, frame: _exit_now(EXIT_INTERRUPTED))
    except KeyboardInterrupt:  # outside cli_main's own handler: still one line
        _interrupted_while_starting(signal.SIGINT, None)
    return code
