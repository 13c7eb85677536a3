"""Every model, one module per aggregate, re-exported here."""

from slipway.db import Base
from slipway.models.app import App
from slipway.models.deploy import Deploy
from slipway.models.event import Event
from slipway.models.instance import Instance
from slipway.models.release import Release
from slipway.models.space import Space, SpaceAttachment, SpaceBackup, SpaceCheckpoint
from slipway.models.user import ApiToken, DashboardSession, SignInFailure, User
from slipway.models.webhook import Delivery, DeliveryAttempt, Webhook

__all__ = [
    "ApiToken",
    "App",
    "Base",
    "DashboardSession",
    "Delivery",
    "DeliveryAttempt",
    "Deploy",
    "Event",
    "Instance",
    "Release",
    "SignInFailure",
    "Space",
    "SpaceAttachment",
    "SpaceBackup",
    "SpaceCheckpoint",
    "User",
    "Webhook",
]
