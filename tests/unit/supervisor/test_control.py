"""The ctl server side: ``parse_request`` on good and bad frames, ``dispatch`` against a fake."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.ctl.commands import COMMANDS
from supervisor.ctl.commands.errors import BAD_ARGUMENTS, BAD_REQUEST, INTERNAL, REFUSED, UNKNOWN_COMMAND, CommandError
from supervisor.ctl.server import MAX_ID_CHARS, CtlRequest, dispatch, error_reply, ok_reply, parse_request
from tests.fakes import FakeSupervisor

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

IDENTITY = b"\x00k\x8bEg"


def _frames(request: Any) -> list[bytes]:
    return [IDENTITY, b"", orjson.dumps(request)]


def _error_of(reply_frames: list[bytes] | None) -> tuple[Any, str]:
    assert reply_frames is not None
    assert reply_frames[:2] == [IDENTITY, b""]
    reply = orjson.loads(reply_frames[2])
    assert reply["ok"] is False
    return reply["id"], reply["error"]["code"]


# --- parse_request --------------------------------------------------------------------------------


def test_a_good_request_is_parsed_with_its_route() -> None:
    request, reply = parse_request(_frames({"id": "r1", "command": "restart", "args": {"role": "feed"}}))

    assert reply is None
    assert request == CtlRequest(route=[IDENTITY, b""], id="r1", command="restart", args={"role": "feed"})


def test_args_default_to_an_empty_object() -> None:
    request, _ = parse_request(_frames({"id": "r1", "command": "status"}))

    assert request is not None
    assert request.args == {}


@pytest.mark.parametrize("frames", [[], [IDENTITY]], ids=["none", "identity-only"])
def test_frames_without_a_payload_get_no_reply_at_all(frames: list[bytes]) -> None:
    assert parse_request(frames) == (None, None)


@pytest.mark.parametrize(
    "frames",
    [
        [IDENTITY, b"{}"],
        [IDENTITY, b"x", b"{}"],
        [IDENTITY, b"", b"{}", b"extra"],
        [IDENTITY, b"", b"", b"", b""],
    ],
    ids=["no-delimiter", "non-empty-delimiter", "extra-frame", "many-frames"],
)
def test_wrong_frame_counts_are_answered_with_bad_request(frames: list[bytes]) -> None:
    request, reply = parse_request(frames)

    assert request is None
    assert _error_of(reply) == (None, BAD_REQUEST)


@pytest.mark.parametrize(
    ("payload", "expected_id"),
    [
        (b"not json", None),
        (b"\xff", None),
        (b"", None),
        (b"[1]", None),
        (b'"status"', None),
        (b'{"command": "status"}', None),
        (b'{"id": 7, "command": "status"}', None),
        (b'{"id": "", "command": "status"}', None),
        (b'{"id": "' + b"x" * (MAX_ID_CHARS + 1) + b'", "command": "status"}', None),
        (b'{"id": "r", "command": 5}', "r"),
        (b'{"id": "r"}', "r"),
        (b'{"id": "r", "command": "status", "args": []}', "r"),
        (b'{"id": "r", "command": "status", "args": null}', "r"),
        (b'{"id": "r", "command": "status", "args": {}, "extra": 1}', "r"),
    ],
    ids=[
        "not-json",
        "invalid-utf8",
        "empty",
        "array",
        "string",
        "no-id",
        "int-id",
        "empty-id",
        "long-id",
        "int-command",
        "no-command",
        "args-list",
        "args-null",
        "extra-field",
    ],
)
def test_malformed_requests_are_answered_with_bad_request(payload: bytes, expected_id: str | None) -> None:
    request, reply = parse_request([IDENTITY, b"", payload])

    assert request is None
    assert _error_of(reply) == (expected_id, BAD_REQUEST)


def test_an_id_of_exactly_the_maximum_length_is_accepted() -> None:
    request, reply = parse_request(_frames({"id": "x" * MAX_ID_CHARS, "command": "status"}))

    assert reply is None
    assert request is not None


def test_an_unknown_command_is_answered_with_unknown_command_listing_the_known_ones() -> None:
    request, reply = parse_request(_frames({"id": "r9", "command": "launch"}))

    assert request is None
    assert _error_of(reply) == ("r9", UNKNOWN_COMMAND)
    assert reply is not None
    reason = orjson.loads(reply[2])["error"]["reason"]
    for name in COMMANDS:
        assert name in reason


_frame = st.binary(max_size=64) | st.sampled_from([b"", b"{}", b"[]", b"null"])
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=16),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=10,
)
_request_like = st.fixed_dictionaries(
    {},
    optional={
        "id": _json_value | st.text(max_size=200),
        "command": _json_value | st.sampled_from(sorted(COMMANDS)),
        "args": _json_value,
        "extra": _json_value,
    },
)


def _check_outcome(frames: list[bytes], outcome: tuple[CtlRequest | None, list[bytes] | None]) -> None:
    request, reply = outcome
    assert request is None or reply is None
    if request is not None:
        assert request.command in COMMANDS
        assert isinstance(request.args, dict)
        assert 0 < len(request.id) <= MAX_ID_CHARS
    if reply is not None:
        assert reply[0] == frames[0]
        assert orjson.loads(reply[-1])["ok"] is False


@settings(max_examples=400, deadline=None)
@given(frames=st.lists(_frame, max_size=5))
def test_parse_request_never_raises_for_arbitrary_frames(frames: list[bytes]) -> None:
    _check_outcome(frames, parse_request(frames))


@settings(max_examples=400, deadline=None)
@given(request=_request_like)
def test_parse_request_never_raises_for_arbitrary_json_objects(request: dict[str, Any]) -> None:
    frames = _frames(request)

    _check_outcome(frames, parse_request(frames))


# --- dispatch -------------------------------------------------------------------------------------


def _dispatch(supervisor: FakeSupervisor, command: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    reply: dict[str, Any] = orjson.loads(
        dispatch(supervisor, CtlRequest(route=[IDENTITY, b""], id="req-1", command=command, args=args or {}))
    )
    assert reply["id"] == "req-1"
    return reply


def test_dispatch_runs_the_command_and_wraps_its_result() -> None:
    fake = FakeSupervisor(state="TRADING")

    reply = _dispatch(fake, "pause")

    assert reply == {"id": "req-1", "ok": True, "result": {"message": "paused", "changed": True, "state": "PAUSED"}}
    assert fake.calls == [("pause", ())]


def test_dispatch_maps_a_command_error_to_its_code_and_reason() -> None:
    fake = FakeSupervisor()
    fake.fail_with["resume"] = CommandError(REFUSED, "refused: feed is down")

    reply = _dispatch(fake, "resume")

    assert reply == {"id": "req-1", "ok": False, "error": {"code": REFUSED, "reason": "refused: feed is down"}}


def test_dispatch_maps_an_unexpected_exception_to_internal_and_keeps_going() -> None:
    fake = FakeSupervisor()
    fake.fail_with["status"] = KeyError("slots")

    reply = _dispatch(fake, "status")
    after = _dispatch(fake, "pause")

    assert reply["ok"] is False
    assert reply["error"]["code"] == INTERNAL
    assert "KeyError" in reply["error"]["reason"]
    assert after["ok"] is True


def test_dispatch_maps_an_unencodable_result_to_internal() -> None:
    fake = FakeSupervisor(status_doc={"state": {1, 2}})

    reply = _dispatch(fake, "status")

    assert reply["error"]["code"] == INTERNAL


def test_dispatch_refuses_bad_arguments_before_touching_the_supervisor() -> None:
    fake = FakeSupervisor()

    reply = _dispatch(fake, "pause", {"force": True})

    assert reply["error"]["code"] == BAD_ARGUMENTS
    assert fake.calls == []


def test_replies_are_plain_json_objects() -> None:
    assert orjson.loads(ok_reply("a", {"x": 1})) == {"id": "a", "ok": True, "result": {"x": 1}}
    assert orjson.loads(error_reply(None, BAD_REQUEST, "why")) == {
        "id": None,
        "ok": False,
        "error": {"code": BAD_REQUEST, "reason": "why"},
    }
