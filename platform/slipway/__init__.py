"""Slipway: a self-hosted PaaS that follows the Modulus docker image standard."""

__version__ = "0.1.0"
