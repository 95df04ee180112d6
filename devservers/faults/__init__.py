"""Fault-injection dev tools for reliability tests (never imported by product code)."""

from devservers.faults.proxy import FaultProxy

__all__ = ["FaultProxy"]
