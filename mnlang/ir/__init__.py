"""The IR: the contract between the compiler and the runtime.

Importing `mnlang.ir` loads only msgspec models and pure helpers; the
compiler (`mnlang.ir.compile`) is imported separately because it needs the
parser and the checker, which the runtime never loads.
"""

from mnlang.ir.base import IR_VERSION, RetryIR, SpanIR, TypeIR
from mnlang.ir.model import (
    AgentIR,
    EffectIR,
    EventIR,
    IRProgram,
    ScheduleIR,
    ToolIR,
    WorkflowIR,
)
from mnlang.ir.states import State

__all__ = [
    "IR_VERSION",
    "AgentIR",
    "EffectIR",
    "EventIR",
    "IRProgram",
    "RetryIR",
    "ScheduleIR",
    "SpanIR",
    "State",
    "ToolIR",
    "TypeIR",
    "WorkflowIR",
]
