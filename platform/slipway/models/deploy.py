"""A deploy: one attempt to turn a source archive into a running release."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from slipway.db import Base
from slipway.models.common import UTCDateTime, utcnow

if TYPE_CHECKING:
    from slipway.models.app import App

QUEUED = "queued"
BUILDING = "building"
RELEASING = "releasing"
STARTING = "starting"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
DEPLOY_STATES = (QUEUED, BUILDING, RELEASING, STARTING, SUCCEEDED, FAILED, CANCELLED)
TERMINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})

SOURCE_KINDS = ("tarball", "git")


class Deploy(Base):
    __tablename__ = "deploys"
    __table_args__ = (Index("ix_deploys_app_id_state", "app_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default=QUEUED)
    error: Mapped[str | None] = mapped_column(Text)
    source_path: Mapped[str] = mapped_column(String(1024))
    source_kind: Mapped[str] = mapped_column(String(16), default="tarball")
    commit: Mapped[str | None] = mapped_column(String(64))
    # use_alter: deploys and releases point at each other.
    release_id: Mapped[int | None] = mapped_column(
        ForeignKey("releases.id", use_alter=True, ondelete="SET NULL")
    )
    log_path: Mapped[str] = mapped_column(String(1024), default="")
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    app: Mapped[App] = relationship(back_populates="deploys")

    @property
    def is_finished(self) -> bool:
        return self.state in TERMINAL_STATES

    def __repr__(self) -> str:
        return f"<Deploy {self.id} {self.state}>"
