"""`slipway tokens`, `tokens:revoke` and `users:delete` against a fake API on loopback."""

from __future__ import annotations

from tests.unit.test_cli import FakeApi, api, run

__all__ = ["api"]  # the fixture, used by name

TOKENS = [
    {"id": 3, "name": "", "user": "alice", "created_at": "2026-11-27T10:00:00+00:00",
     "last_used_at": "2026-11-27T11:00:00+00:00"},
    {"id": 7, "name": "ci", "user": "alice", "created_at": "2026-11-27T12:00:00+00:00",
     "last_used_at": None},
]  # fmt: skip


def test_tokens_lists_ids_and_names_never_secrets(api: FakeApi) -> None:
    api.on("GET", "/user/tokens", (200, TOKENS))
    result = run("tokens")
    assert result.exit_code == 0, result.output
    header, first, second = result.output.splitlines()
    assert header.split() == ["ID", "NAME", "CREATED_AT", "LAST_USED_AT"]
    assert first.split()[0] == "3" and second.split()[:2] == ["7", "ci"]
    run("tokens", "--user", "bob")
    assert api.last("GET", "/user/tokens").query == {"user": ["bob"]}


def test_tokens_revoke_sends_the_id(api: FakeApi) -> None:
    api.on("DELETE", "/user/tokens/7", (204, None))
    result = run("tokens:revoke", "7")
    assert result.exit_code == 0 and result.output == "Revoked token 7.\n"
    api.on("DELETE", "/user/tokens/8", (404, {"error": "There is no token with id 8."}))
    refused = run("tokens:revoke", "8")
    assert refused.exit_code == 1 and "There is no token with id 8." in refused.output


def test_users_delete_asks_for_the_name_and_force_destroys_apps(api: FakeApi) -> None:
    wrong = run("users:delete", "alice", input="bob\n")
    assert wrong.exit_code == 1 and "nothing deleted" in wrong.output
    answer = {"username": "alice", "destroyed_apps": ["hello"]}
    api.on("DELETE", "/users/alice", (200, answer))
    result = run("users:delete", "alice", "--force", "--confirm", "alice")
    assert result.exit_code == 0, result.output
    assert result.output == "Destroyed hello.\nDeleted alice.\n"
    assert api.last("DELETE", "/users/alice").query == {"force": ["1"]}
