"""Error codes of the ctl protocol, and the exception a command raises to refuse.

Codes: ``bad_request`` (not a well-formed request), ``unknown_command``, ``bad_arguments``,
``refused`` (understood, but not allowed now: the reply says why), ``internal`` (a bug; the
supervisor stays up). The client maps ``unknown_command``/``bad_arguments`` to exit 2 and the
others to exit 1.
"""

from __future__ import annotations

BAD_REQUEST = "bad_request"
UNKNOWN_COMMAND = "unknown_command"
BAD_ARGUMENTS = "bad_arguments"
REFUSED = "refused"
INTERNAL = "internal"


class CommandError(Exception):
    """A command cannot be carried out; ``code`` is one of the codes above."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
