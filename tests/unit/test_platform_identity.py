"""Each platform's identity: its queue, broker keys, locks and task messages carry it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from slipway import tasks
from slipway.config import Settings
from slipway.services import deploys
from slipway.tasks import deploys as deploy_tasks


def test_the_default_platform_is_1_and_another_data_dir_another_id(tmp_path: Path) -> None:
    one, two = Settings(data_dir=tmp_path / "a"), Settings(data_dir=tmp_path / "b")
    assert Settings().platform_id == "1"
    assert one.platform_id != two.platform_id
    assert one.platform_id == Settings(data_dir=tmp_path / "a").platform_id  # stable


def test_queues_and_broker_keys_carry_the_platform_id(tmp_path: Path) -> None:
    one = tasks.celery_config(Settings(data_dir=tmp_path / "a"))
    two = tasks.celery_config(Settings(data_dir=tmp_path / "b"))
    for key in ("task_default_queue", "task_default_routing_key", "control_exchange"):
        assert one[key] != two[key]
    assert one["task_default_queue"] == "slipway." + Settings(data_dir=tmp_path / "a").platform_id
    prefixes = [c["broker_transport_options"]["global_keyprefix"] for c in (one, two)]  # type: ignore[index]
    assert prefixes[0] != prefixes[1]
    assert prefixes[0].startswith(str(one["task_default_queue"]))


def test_the_deploy_lock_names_the_platform(tmp_path: Path) -> None:
    one, two = Settings(data_dir=tmp_path), Settings(data_dir=tmp_path / "other")
    assert one.platform_id in deploys.lock_path(one, 7).parts
    assert deploys.lock_path(one, 7).name == "app-7.lock"
    assert deploys.lock_path(one, 7) != deploys.lock_path(two, 7)


def test_every_sent_message_is_stamped_with_this_platform() -> None:
    headers: dict[str, Any] = {}
    tasks._stamp_platform(headers=headers)
    assert headers == {tasks.PLATFORM_HEADER: tasks.this_platform()}
    foreign = {tasks.PLATFORM_HEADER: "other"}
    tasks._stamp_platform(headers=foreign)  # an explicit header (tests) is kept
    assert foreign == {tasks.PLATFORM_HEADER: "other"}


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(deploy_tasks, "task_session", _no_session)
    monkeypatch.setattr(deploy_tasks, "adapters", lambda: None)
    monkeypatch.setattr(
        deploy_tasks.deploys, "run_deploy", lambda session, deploy_id, *a: calls.append(deploy_id)
    )
    return calls


class _no_session:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _deliver(platform: str | None, deploy_id: int) -> Any:
    """Run the deploy task the way a worker does, for a message with this platform header."""
    task = deploy_tasks.deploy
    request: dict[str, Any] = {"called_directly": False, "id": "t-1"}
    if platform is not None:
        request[tasks.PLATFORM_HEADER] = platform
    task.push_request(**request)
    try:
        return task(deploy_id)
    finally:
        task.pop_request()


def test_a_task_of_this_platform_runs(ran: list[int]) -> None:
    _deliver(tasks.this_platform(), 5)
    assert ran == [5]


def test_a_task_of_another_platform_or_of_none_is_dropped(
    ran: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    assert _deliver("someone-else", 5) is None
    assert _deliver(None, 6) is None
    assert ran == []
    assert "sent for platform 'someone-else'" in caplog.text


def test_a_direct_call_is_not_a_message(ran: list[int]) -> None:
    deploy_tasks.deploy(8)
    assert ran == [8]
