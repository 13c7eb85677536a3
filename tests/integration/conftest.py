"""Fixtures of the integration tests: ``running_platform`` is a whole platform on free ports."""

from tests.integration.platform import running_platform

__all__ = ["running_platform"]
