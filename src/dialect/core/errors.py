"""The one exception type for bad user input.

Anything a user can get wrong (a missing file, a malformed config, an unknown override key, an
out-of-range token id) raises :class:`DialectError` with one readable sentence. The command line
catches it, prints that sentence and exits with code 2; it never shows a traceback for it.
"""


class DialectError(Exception):
    """Bad input from the user: printed as one line by the CLI, exit code 2."""
