"""An instance: one container running one process type of one release."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from slipway.db import Base
from slipway.models.common import UTCDateTime, utcnow

if TYPE_CHECKING:
    from slipway.models.app import App
    from slipway.models.release import Release

STARTING = "starting"
LIVE = "live"
DRAINING = "draining"
STOPPED = "stopped"
FAILED = "failed"
CRASHED = "crashed"
INSTANCE_STATES = (STARTING, LIVE, DRAINING, STOPPED, FAILED, CRASHED)


class Instance(Base):
    __tablename__ = "instances"
    __table_args__ = (Index("ix_instances_app_id_state", "app_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), index=True
    )
    process_type: Mapped[str] = mapped_column(String(64), default="web")
    index: Mapped[int] = mapped_column(default=1)
    container_id: Mapped[str | None] = mapped_column(String(128))
    container_name: Mapped[str] = mapped_column(String(255))
    volume_name: Mapped[str] = mapped_column(String(255))
    host_port: Mapped[int | None]
    state: Mapped[str] = mapped_column(String(16), default=STARTING)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    app: Mapped[App] = relationship(back_populates="instances")
    release: Mapped[Release] = relationship()

    def __repr__(self) -> str:
        return f"<Instance {self.container_name} {self.state}>"
