"""Fake external services for this folder's tests."""

from tests.fakes.fixtures import fakes

__all__ = ["fakes"]
