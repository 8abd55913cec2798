"""User-facing errors.

A `UserError` is bad input the user can fix (unknown env id, corrupt shard, missing world file).
The CLI prints its message on one line and exits with code 2; tracebacks are for our bugs only.
"""


class UserError(Exception):
    """Bad input: the message names the problem and how to fix it."""

    exit_code = 2
