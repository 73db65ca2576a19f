"""Secrets read from files: the one place that finds a secret and refuses a file others can read.

A secret (the OANDA token, the SMTP password, a CURVE secret key) comes from one of three sources,
the first that is set winning:

1. a file the configuration names (``broker.token_file``, ``alerts.password_file``,
   ``ctl.server_secret_key_file``, ...);
2. a systemd credential: ``$CREDENTIALS_DIRECTORY/<name>`` (``LoadCredential=name:/path`` in the
   unit), when that file exists;
3. an environment variable (``OANDA_TOKEN``, ``TRADEHOST_SMTP_PASSWORD``), for the secrets that
   have one.

A secret file must be a regular file readable by its owner only: group or other permission bits
(mode & 0o077; for a systemd credential, other bits only, see ``check_secret_file``) refuse it
with a ``ConfigError`` naming the file (``tradehost run`` exits 2). The value is the file's text
without its trailing newline; an empty file is refused too. Nothing here
logs or returns the value anywhere but to the caller. Stdlib only: ``tradehost ctl`` reads its
CURVE key through this module.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from actors.core.errors import ConfigError

__all__ = ["CREDENTIALS_DIRECTORY", "check_secret_file", "credential_path", "read_secret", "read_secret_file"]

CREDENTIALS_DIRECTORY = "CREDENTIALS_DIRECTORY"
MAX_SECRET_BYTES = 65536


def check_secret_file(path: str, key: str, *, forbidden: int = 0o077) -> None:
    """Refuse ``path`` unless it is a regular file without group or other permissions.

    Args:
        path: the file.
        key: the configuration key (or credential) naming it, for the message.
        forbidden: the permission bits that refuse it (a systemd credential is checked for the
            other bits only: systemd may grant the unit's user read access by an ACL, whose mask
            shows as group bits, inside a directory only that user can enter).

    Raises:
        ConfigError: one line naming ``key`` and ``path``.
    """
    try:
        st = os.stat(path)  # noqa: PTH116 - no pathlib on the ctl path
    except FileNotFoundError as e:
        raise ConfigError(f"{key}: {path}: no such file") from e
    except OSError as e:
        raise ConfigError(f"{key}: {path}: {e.strerror}") from e
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{key}: {path} is not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & forbidden:
        raise ConfigError(f"{key}: {path} is readable by group or others (mode {mode:04o}); refused: chmod 600 {path}")


def read_secret_file(path: str, key: str, *, forbidden: int = 0o077) -> str:
    """The secret in ``path`` (its text without the trailing newline), after ``check_secret_file``.

    Raises:
        ConfigError: the file is missing, unreadable, not private, empty or too large.
    """
    check_secret_file(path, key, forbidden=forbidden)
    try:
        with open(path, "rb") as f:  # noqa: PTH123
            raw = f.read(MAX_SECRET_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{key}: {path}: {e.strerror}") from e
    if len(raw) > MAX_SECRET_BYTES:
        raise ConfigError(f"{key}: {path} is larger than {MAX_SECRET_BYTES} bytes; not a secret file")
    try:
        value = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{key}: {path} is not UTF-8 text") from e
    if not value.strip():
        raise ConfigError(f"{key}: {path} is empty")
    return value


def credential_path(environ: Mapping[str, str], name: str) -> str | None:
    """``$CREDENTIALS_DIRECTORY/name`` when systemd passed that credential, else None."""
    directory = environ.get(CREDENTIALS_DIRECTORY, "")
    if not directory:
        return None
    path = os.path.join(directory, name)  # noqa: PTH118
    return path if os.path.lexists(path) else None


def read_secret(
    environ: Mapping[str, str], *, key: str, file: str = "", credential: str = "", env_var: str = ""
) -> str:
    """One secret from the first source that is set: ``file``, the systemd ``credential``, ``env_var``.

    Args:
        environ: the process environment (``$CREDENTIALS_DIRECTORY`` and ``env_var`` are read here).
        key: the configuration key of ``file``, for messages.
        file: the path the configuration names (empty: not configured).
        credential: the systemd credential name (empty: none).
        env_var: the environment variable (empty: none).

    Returns:
        The secret, or ``""`` when no source is set.

    Raises:
        ConfigError: the chosen file is missing, not private or empty (the next source is never
            tried: a file the operator named is not silently replaced).
    """
    if file:
        return read_secret_file(file, key)
    if credential:
        path = credential_path(environ, credential)
        if path is not None:
            return read_secret_file(path, f"systemd credential {credential}", forbidden=0o007)
    return environ.get(env_var, "") if env_var else ""
