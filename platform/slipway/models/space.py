"""Spaces: named, size-capped persistent filesystems owned by a user, and what hangs off them.

A space's data lives with the space provider under its ``key`` (``sp-<id>``); the rows here
are the names, owners, checkpoints, attachments to apps and backups users see.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from slipway.db import Base
from slipway.models.common import UTCDateTime, utcnow
from slipway.models.user import User

if TYPE_CHECKING:
    from slipway.models.app import App

CREATING = "creating"  # the row exists, the provider is making (or restoring) its data
READY = "ready"
SPACE_STATES = (CREATING, READY)


class Space(Base):
    __tablename__ = "spaces"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)  # the cap, in bytes
    state: Mapped[str] = mapped_column(String(16), default=CREATING)
    # Where it came from: a fork names its source space (and checkpoint), a restore its backup.
    origin: Mapped[str] = mapped_column(String(255), default="", server_default="")
    # The nearly-full event fired and is not re-armed until usage falls back below the mark.
    nearly_full: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    owner: Mapped[User] = relationship()
    checkpoints: Mapped[list[SpaceCheckpoint]] = relationship(
        back_populates="space",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="SpaceCheckpoint.id",
    )
    attachments: Mapped[list[SpaceAttachment]] = relationship(
        back_populates="space", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def key(self) -> str:
        """The provider's name for this space's data: stable, never reused, not user-chosen."""
        return f"sp-{self.id}"

    def __repr__(self) -> str:
        return f"<Space {self.name}>"


class SpaceCheckpoint(Base):
    __tablename__ = "space_checkpoints"
    __table_args__ = (UniqueConstraint("space_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    space: Mapped[Space] = relationship(back_populates="checkpoints")

    def __repr__(self) -> str:
        return f"<SpaceCheckpoint {self.space_id}@{self.name}>"


class SpaceAttachment(Base):
    """A space mounted in one of an app's slots, at ``/spaces/<slot>/tree``."""

    __tablename__ = "space_attachments"
    __table_args__ = (UniqueConstraint("app_id", "slot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"), index=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    slot: Mapped[str] = mapped_column(String(63))
    # The process types that mount it; empty: every type (and the release phase and runs).
    process_types: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    space: Mapped[Space] = relationship(back_populates="attachments")
    app: Mapped[App] = relationship()

    def mounted_in(self, process_type: str) -> bool:
        return not self.process_types or process_type in self.process_types

    def __repr__(self) -> str:
        return f"<SpaceAttachment {self.space_id} in {self.app_id}:{self.slot}>"


class SpaceBackup(Base):
    """A backup file the platform keeps in its data directory (scheduled or asked for)."""

    __tablename__ = "space_backups"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Kept when the space goes: a backup outlives what it saved until it is pruned or deleted.
    space_id: Mapped[int | None] = mapped_column(
        ForeignKey("spaces.id", ondelete="SET NULL"), index=True
    )
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    space_name: Mapped[str] = mapped_column(String(63))
    path: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger, default=0)  # bytes of the file
    sha256: Mapped[str] = mapped_column(String(64), default="")
    scheduled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<SpaceBackup {self.id} of {self.space_name}>"
