"""A release: an immutable, numbered pair of a slug and a config snapshot."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from slipway.db import Base
from slipway.models.common import UTCDateTime, utcnow

if TYPE_CHECKING:
    from slipway.models.app import App

STACKS = ("node", "python", "static")


class Release(Base):
    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("app_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    version: Mapped[int]
    slug_path: Mapped[str] = mapped_column(String(1024))
    stack: Mapped[str] = mapped_column(String(32))
    # The Node.js release a node app was built on, mounted into its containers ("": the image's).
    node_version: Mapped[str] = mapped_column(String(32), default="", server_default="")
    # The tarball of the source's assets/<name>/ directories, kept out of the slug and mounted
    # read-only at /mnt/assets ("": the release has none).
    assets_path: Mapped[str] = mapped_column(String(1024), default="", server_default="")
    # Plain JSON (not mutable): a release never changes once written.
    config: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    process_types: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # app.json's startup checks of the build (appjson.HealthCheck fields): every roll onto the
    # release, deploy, config change, rollback or scale, runs them on each new web instance.
    health_checks: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON, default=list, server_default="[]"
    )
    description: Mapped[str] = mapped_column(Text, default="")
    deploy_id: Mapped[int | None] = mapped_column(
        ForeignKey("deploys.id", use_alter=True, ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    app: Mapped[App] = relationship(back_populates="releases", foreign_keys=[app_id])

    def __repr__(self) -> str:
        return f"<Release v{self.version} of app {self.app_id}>"
