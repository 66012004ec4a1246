"""What can be done to a deployment target: the vocabulary shared by planner and actuators.

It sits in the base layer so that the controller's planner and the adapters' actuators can
both speak it without importing each other (the layering rule of DESIGN.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Op(Enum):
    """The operations an actuator may support (DESIGN.md "Actuators and their capabilities")."""

    SET_TRAFFIC = "set_traffic"
    PAUSE = "pause"
    RESUME = "resume"
    ROLLBACK = "rollback"
    DISABLE = "disable"
    ENABLE = "enable"


@dataclass(frozen=True)
class Operation:
    """One thing to do to one target. `traffic` for set_traffic, `version` for rollback."""

    target: str
    op: Op
    traffic: int | None = None
    version: str | None = None

    def describe(self) -> str:
        if self.op is Op.SET_TRAFFIC:
            return f"set_traffic({self.traffic}%)"
        if self.op is Op.ROLLBACK:
            return f"rollback(to {self.version})"
        return str(self.op.value)


@dataclass(frozen=True)
class ManualStep:
    """What tidegate cannot do by API and a human must: the plan says so, the runtime pages."""

    target: str
    reason: str
