"""Every model, one module per aggregate, re-exported here."""

from slipway.db import Base
from slipway.models.app import App
from slipway.models.deploy import Deploy
from slipway.models.instance import Instance
from slipway.models.release import Release
from slipway.models.user import ApiToken, User

__all__ = ["ApiToken", "App", "Base", "Deploy", "Instance", "Release", "User"]
