"""An event: something that happened to an app (a crash, an OOM, a deploy), kept for users."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from slipway.db import Base
from slipway.models.common import UTCDateTime, utcnow

CRASH = "crash"
OOM = "oom"
CRASH_LOOP = "crash_loop"
DEPLOY_SUCCEEDED = "deploy_succeeded"
DEPLOY_FAILED = "deploy_failed"
DEPLOY_CANCELLED = "deploy_cancelled"
RELEASED = "released"
SPACE_CREATED = "space_created"
SPACE_CHECKPOINTED = "space_checkpointed"
SPACE_FORKED = "space_forked"
SPACE_BACKED_UP = "space_backed_up"
SPACE_RESTORED = "space_restored"
SPACE_NEARLY_FULL = "space_nearly_full"
APP_SLEPT = "app_slept"
APP_WOKE = "app_woke"
WAKE_FAILED = "wake_failed"
SLEEP_EVENT_TYPES = (APP_SLEPT, APP_WOKE, WAKE_FAILED)
SPACE_EVENT_TYPES = (
    SPACE_CREATED,
    SPACE_CHECKPOINTED,
    SPACE_FORKED,
    SPACE_BACKED_UP,
    SPACE_RESTORED,
    SPACE_NEARLY_FULL,
)
EVENT_TYPES = (
    CRASH,
    OOM,
    CRASH_LOOP,
    DEPLOY_SUCCEEDED,
    DEPLOY_FAILED,
    DEPLOY_CANCELLED,
    RELEASED,
    *SPACE_EVENT_TYPES,
    *SLEEP_EVENT_TYPES,
)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_app_id_created_at", "app_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    instance_id: Mapped[int | None] = mapped_column(
        ForeignKey("instances.id", ondelete="SET NULL"), index=True
    )
    # Space events are recorded for each app the space is attached to, naming the space here.
    space_id: Mapped[int | None] = mapped_column(
        ForeignKey("spaces.id", ondelete="SET NULL"), index=True
    )
    type: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The same happening seen twice (a notification file, then Docker's event) is stored once.
    dedupe_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<Event {self.id} {self.type} app={self.app_id}>"
