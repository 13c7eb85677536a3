"""An app: a name, an owner, its config vars, its formation, and the release it runs."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from slipway.db import Base
from slipway.models.common import JSONDict, UTCDateTime, utcnow
from slipway.models.user import User

if TYPE_CHECKING:
    from slipway.models.deploy import Deploy
    from slipway.models.instance import Instance
    from slipway.models.release import Release

DEFAULT_FORMATION = {"web": 1}
# How a deploy replaces instances: "rolling" starts the new ones next to the old ones and moves
# traffic once they answer (zero downtime; both mount the app's spaces for a moment);
# "stop-first" stops the old ones first, for single-writer software (a short gap).
ROLLING = "rolling"
STOP_FIRST = "stop-first"
DEPLOY_STRATEGIES = (ROLLING, STOP_FIRST)
# sleep_after: None follows the platform's SLIPWAY_SLEEP_AFTER; NEVER_SLEEPS keeps the app awake.
NEVER_SLEEPS = 0


def _default_formation() -> dict[str, int]:
    return dict(DEFAULT_FORMATION)


class App(Base):
    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    config: Mapped[dict[str, str]] = mapped_column(JSONDict, default=dict)
    formation: Mapped[dict[str, int]] = mapped_column(JSONDict, default=_default_formation)
    memory: Mapped[int] = mapped_column(BigInteger, default=512 * 1024**2)
    health_check_path: Mapped[str | None] = mapped_column(String(255))
    deploy_branch: Mapped[str] = mapped_column(String(255), default="main")
    deploy_strategy: Mapped[str] = mapped_column(
        String(16), default=ROLLING, server_default=ROLLING
    )
    # Sleep and wake: seconds without a request before the web instances stop (None: the
    # platform's default, 0: never); the non-web process types that sleep with them (comma
    # separated); whether the app sleeps now; and when it last had a request, woke or deployed.
    sleep_after: Mapped[int | None] = mapped_column(Integer)
    sleep_types: Mapped[str] = mapped_column(String(255), default="", server_default="")
    sleeping: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    active_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # use_alter: apps and releases point at each other; the constraint is added after both exist.
    current_release_id: Mapped[int | None] = mapped_column(
        ForeignKey("releases.id", use_alter=True, ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    owner: Mapped[User] = relationship()
    current_release: Mapped[Release | None] = relationship(
        foreign_keys=[current_release_id], post_update=True
    )
    releases: Mapped[list[Release]] = relationship(
        back_populates="app",
        foreign_keys="Release.app_id",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Release.version.desc()",
    )
    deploys: Mapped[list[Deploy]] = relationship(
        back_populates="app", cascade="all, delete-orphan", passive_deletes=True
    )
    instances: Mapped[list[Instance]] = relationship(
        back_populates="app", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<App {self.name}>"
