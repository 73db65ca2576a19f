"""The emulator's admin API (``/admin/...`` on the same port) and a tiny client for tests.

Routes (no authentication; the emulator binds to loopback):

- ``GET /admin/state``: market time, account, trades, orders, pending faults, request count.
- ``GET /admin/requests``: the API request log (monotonic and wall-clock time, method, path; an
  order POST's client id, order type and instrument).
- ``GET /admin/transactions``: every transaction of the account with the wall-clock time it was
  recorded at (``wall_ns``).
- ``POST /admin/faults``: arm or perform one fault (JSON ``{"type": ..., ...}``, see
  ``docs/emulator.md``); ``DELETE /admin/faults`` forgets pending ones.
- ``POST /admin/advance``: ``{"seconds": N}`` jumps market time forward.
- ``POST /admin/reset``: fresh account, no faults, streams ended.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import orjson

from actors.broker.emulator.app import Emulator
from actors.broker.emulator.wire import ApiError

__all__ = ["AdminClient", "handle_admin"]


def handle_admin(emu: Emulator, method: str, path: str, raw: bytes) -> tuple[int, Any]:
    """Serve one admin request; returns (status, JSON body)."""
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as e:
        raise ApiError(400, {"errorMessage": "admin: body is not JSON"}) from e
    if not isinstance(body, dict):
        raise ApiError(400, {"errorMessage": "admin: body must be a JSON object"})
    route = (method, path.rstrip("/"))
    if route == ("GET", "/admin/state"):
        return 200, emu.state()
    if route == ("GET", "/admin/requests"):
        return 200, {"requests": emu.recent_requests()}
    if route == ("GET", "/admin/transactions"):
        return 200, {"transactions": emu.transaction_history()}
    if route == ("POST", "/admin/faults"):
        return 200, emu.apply_fault(body)
    if route == ("DELETE", "/admin/faults"):
        emu.faults.clear()
        return 200, {"ok": True}
    if route == ("POST", "/admin/advance"):
        return 200, emu.advance(float(body.get("seconds", 0)))
    if route == ("POST", "/admin/reset"):
        return 200, emu.reset()
    raise ApiError(404, {"errorMessage": f"admin: no route {method} {path}"})


class AdminClient:
    """Drives an emulator's admin API (stdlib HTTP, no session to close).

    Args:
        base_url: ``http://127.0.0.1:PORT``.
        timeout_s: per-call timeout.
    """

    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - loopback URL built by the caller
            self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            e.close()
            raise RuntimeError(f"admin {method} {path}: HTTP {e.code} {detail}") from e

    def state(self) -> dict[str, Any]:
        """``GET /admin/state``."""
        result: dict[str, Any] = self._call("GET", "/admin/state")
        return result

    def requests(self) -> list[dict[str, Any]]:
        """``GET /admin/requests``: the API request log."""
        result: list[dict[str, Any]] = self._call("GET", "/admin/requests")["requests"]
        return result

    def transactions(self) -> list[dict[str, Any]]:
        """``GET /admin/transactions``: every transaction with its wall-clock ``wall_ns``."""
        result: list[dict[str, Any]] = self._call("GET", "/admin/transactions")["transactions"]
        return result

    def fault(self, fault_type: str, **params: Any) -> dict[str, Any]:
        """``POST /admin/faults`` with ``{"type": fault_type, **params}``."""
        result: dict[str, Any] = self._call("POST", "/admin/faults", {"type": fault_type, **params})
        return result

    def clear_faults(self) -> None:
        """``DELETE /admin/faults``."""
        self._call("DELETE", "/admin/faults")

    def advance(self, seconds: float) -> dict[str, Any]:
        """``POST /admin/advance``: jump market time forward."""
        result: dict[str, Any] = self._call("POST", "/admin/advance", {"seconds": seconds})
        return result

    def reset(self) -> dict[str, Any]:
        """``POST /admin/reset``."""
        result: dict[str, Any] = self._call("POST", "/admin/reset", {})
        return result
