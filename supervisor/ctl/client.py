"""``CtlClient``: what ``tradehost ctl`` uses to talk to a running host.

One request, one reply, over a fresh DEALER: request ``{id, command, args}``, reply
``{id, ok, result | error{code, reason}}``. A reply that is not JSON or carries another id is
reported as ``bad_reply`` (exit 1). An endpoint that does not speak ZeroMQ is not a host: exit 3
with the reason. No reply within
``ctl.timeout_s`` (or no socket file at all) means the host is not running: exit code 3. This
module is on the hot path of every ``tradehost ctl`` call, so it imports nothing heavy (the
standard ``json`` here: importing orjson costs more than the whole round trip).

A ``tcp://`` endpoint is reached only with CURVE (pyzmq, through ``actors.runtime.transport``,
imported then and only then): this side's key pair (``ctl.client_secret_key_file``) and the
host's public key (``ctl.server_public_key_file``), both written by ``tradehost keys new``. A key
the host does not list in its ``ctl.authorized_keys_dir`` gets no answer at all: exit 3.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from actors.runtime import zmtp

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class CtlConfig:
    """The ``[ctl]`` section."""

    endpoint: str = field(
        default="",
        metadata={"doc": "Where `tradehost ctl` reaches the host; empty: ipc://<run_dir>/ctl.sock (0600)."},
    )
    timeout_s: float = field(
        default=5.0,
        metadata={"doc": "How long `tradehost ctl` waits for a reply before exit 3.", "min": 0.1, "max": 3600.0},
    )
    max_request_bytes: int = field(
        default=65536, metadata={"doc": "Larger ctl requests are dropped by ZeroMQ.", "min": 1024}
    )
    server_secret_key_file: str = field(
        default="",
        metadata={
            "doc": "Host side, tcp endpoint: the host's CURVE key pair (NAME.key_secret from `tradehost keys new`, "
            "mode 0600)."
        },
    )
    authorized_keys_dir: str = field(
        default="",
        metadata={"doc": "Host side, tcp endpoint: the clients' public keys (*.key) admitted; read at start."},
    )
    client_secret_key_file: str = field(
        default="",
        metadata={"doc": "ctl side, tcp endpoint: this client's CURVE key pair (NAME.key_secret, mode 0600)."},
    )
    server_public_key_file: str = field(
        default="",
        metadata={"doc": "ctl side, tcp endpoint: the host's public key (its NAME.key)."},
    )

    @property
    def is_tcp(self) -> bool:
        """True for a ``tcp://`` endpoint (CURVE only)."""
        return self.endpoint.startswith("tcp://")


@dataclass(frozen=True, slots=True)
class CtlReply:
    """A decoded reply, or the reason there is none."""

    ok: bool
    result: dict[str, Any] | None = None
    code: str = ""
    reason: str = ""
    exit_code: int = EXIT_OK


def _ipc_path(endpoint: str) -> str | None:
    return endpoint[len("ipc://") :] if endpoint.startswith("ipc://") else None


@dataclass(frozen=True, slots=True)
class CurveKeys:
    """What a ctl client needs for CURVE: the host's public key and this client's key pair."""

    server_public: bytes
    client_public: bytes
    client_secret: bytes = field(repr=False)


def curve_keys(cfg: CtlConfig) -> CurveKeys:
    """Read the client's CURVE keys named by ``cfg`` (a secret key file must be 0600).

    Raises:
        ConfigError: a key file is missing, not private or not a key.
    """
    from actors.core.errors import ConfigError  # noqa: PLC0415 - only on the tcp path
    from actors.core.secretfile import check_secret_file  # noqa: PLC0415
    from actors.runtime import transport  # noqa: PLC0415 - pyzmq, only for a tcp endpoint

    problems = []
    if not (cfg.client_secret_key_file and cfg.server_public_key_file):
        raise ConfigError(
            "ctl.endpoint: a tcp:// endpoint is reached with CURVE only: set ctl.client_secret_key_file and "
            "ctl.server_public_key_file (`tradehost keys new NAME`)"
        )
    check_secret_file(cfg.client_secret_key_file, "ctl.client_secret_key_file")
    keys: dict[str, tuple[bytes, bytes | None]] = {}
    for key, path in (
        ("ctl.client_secret_key_file", cfg.client_secret_key_file),
        ("ctl.server_public_key_file", cfg.server_public_key_file),
    ):
        try:
            keys[key] = transport.load_curve_key(path)
        except (OSError, ValueError) as e:
            problems.append(f"{key}: {path} is not a readable CURVE key file ({e})")
    client = keys.get("ctl.client_secret_key_file")
    if client is not None and client[1] is None:
        problems.append(
            f"ctl.client_secret_key_file: {cfg.client_secret_key_file} holds no secret key (the .key_secret)"
        )
    if problems or client is None or client[1] is None:
        raise ConfigError(problems)
    return CurveKeys(
        server_public=keys["ctl.server_public_key_file"][0], client_public=client[0], client_secret=client[1]
    )


class CtlClient:
    """Send ctl commands to a running host."""

    def __init__(self, endpoint: str, timeout_s: float, *, curve: CurveKeys | None = None) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.curve = curve

    @classmethod
    def from_config(cls, cfg: CtlConfig) -> CtlClient:
        """The client ``tradehost ctl`` uses for the ``[ctl]`` section (CURVE keys read for tcp).

        Raises:
            ConfigError: a tcp endpoint without usable client keys.
        """
        return cls(cfg.endpoint, cfg.timeout_s, curve=curve_keys(cfg) if cfg.is_tcp else None)

    def call(self, command: str, args: dict[str, Any] | None = None) -> CtlReply:
        """Send one command and wait for its reply."""
        ipc = _ipc_path(self.endpoint)
        if ipc is not None and not os.path.exists(ipc):  # noqa: PTH110 (str path, no Path import cost)
            return CtlReply(
                ok=False,
                code="not_running",
                reason=f"host is not running (no socket at {ipc})",
                exit_code=EXIT_NOT_RUNNING,
            )
        request_id = os.urandom(8).hex()
        payload = json.dumps({"id": request_id, "command": command, "args": args or {}}).encode()
        if self.curve is not None:
            return self._decode(request_id, self._curve_request(payload, self.curve))
        try:
            raw = zmtp.request(self.endpoint, payload, self.timeout_s)
        except zmtp.ZmtpError as e:
            return CtlReply(
                ok=False,
                code="not_running",
                reason=f"no tradehost host at {self.endpoint}: {e}",
                exit_code=EXIT_NOT_RUNNING,
            )
        return self._decode(request_id, raw)

    def _curve_request(self, payload: bytes, keys: CurveKeys) -> bytes | CtlReply:
        from actors.runtime import transport  # noqa: PLC0415 - pyzmq, only for a tcp endpoint

        raw = transport.curve_request(
            self.endpoint,
            payload,
            self.timeout_s,
            server_public_key=keys.server_public,
            client_key=(keys.client_public, keys.client_secret),
        )
        if raw is None:
            return CtlReply(
                ok=False,
                code="not_running",
                reason=f"no answer from {self.endpoint} within {self.timeout_s}s: the host is not running, or its "
                "ctl.authorized_keys_dir does not hold this client's public key",
                exit_code=EXIT_NOT_RUNNING,
            )
        return raw

    def _decode(self, request_id: str, raw: bytes | CtlReply | None) -> CtlReply:
        if isinstance(raw, CtlReply):
            return raw
        if raw is None:
            return CtlReply(
                ok=False,
                code="not_running",
                reason=f"host is not running or not answering at {self.endpoint} within {self.timeout_s}s",
                exit_code=EXIT_NOT_RUNNING,
            )
        try:
            reply = json.loads(raw)
        except (ValueError, RecursionError):
            return CtlReply(
                ok=False, code="bad_reply", reason="host sent a reply that is not JSON", exit_code=EXIT_REFUSED
            )
        if not isinstance(reply, dict) or reply.get("id") != request_id:
            return CtlReply(ok=False, code="bad_reply", reason="host sent an unmatched reply", exit_code=EXIT_REFUSED)
        if reply.get("ok"):
            result = reply.get("result")
            return CtlReply(ok=True, result=result if isinstance(result, dict) else {})
        raw_error = reply.get("error")
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        code = str(error.get("code", "failed"))
        return CtlReply(
            ok=False,
            code=code,
            reason=str(error.get("reason", "failed")),
            exit_code=EXIT_USAGE if code in ("unknown_command", "bad_arguments") else EXIT_REFUSED,
        )
