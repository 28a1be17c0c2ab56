"""The interpreter's tunables, with their environment overrides.

Commit points beyond the ones the types impose (DESIGN.md, "The runtime"): at least
every `commit_every` steps and every `commit_ms` milliseconds while something is
uncommitted, and after a tool call slower than `slow_call_ms`. Crash tests fix
`MNC_COMMIT_EVERY` and set `MNC_COMMIT_MS=0` (no time-based commits) so that the same
run makes the same commits.

Short waits: a process executing a run waits itself for a timer due within
`short_wait_s` (`MNC_SHORT_WAIT_S`, 5 seconds for the commands, which take their
config from the environment) instead of leaving the run waiting for a worker; see
docs/runtime.md, "Short waits".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mnlang.runtime.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from mnlang.models.setup import ModelSetup
    from mnlang.runtime.doubles import CallDoubles, RecordedExternals
    from mnlang.runtime.faults import FaultPlan


SHORT_WAIT_S = 5.0
"""The commands' `short_wait_s` when `MNC_SHORT_WAIT_S` is not set."""


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    commit_every: int = 100
    """Commit at least every this many executed states."""
    commit_ms: float = 50.0
    """Commit pending changes at least this often; 0 turns time-based commits off."""
    slow_call_ms: float = 200.0
    """A tool call that took longer is committed at once, so a crash does not repeat it."""
    workers: int = 32
    """Threads that run tool calls."""
    lease_ttl_s: float = 60.0
    """How long a run's lease lasts without renewal; renewed at a third of that."""
    cancel_poll_s: float = 1.0
    """How often a run with nothing to commit checks whether it was cancelled."""
    short_wait_s: float = 0.0
    """A timer (`wait`, a durable retry backoff, a checkpoint's or an event's timeout, the
    deadline) due within this many seconds is waited for in this process: the run stays
    `running`, holding its lease and its `limit` slot, and goes on when the timer is due.
    0 leaves every timer to a worker (the default here; `from_env` gives 5 s)."""
    models: ModelSetup | str | None = None
    """Who answers the agents: a `--models` spec (`mnlang.models.setup`), providers set up
    by the caller, or None for the setup the run started with (else the default)."""
    doubles: CallDoubles | None = None
    """Stand-ins for tool and effect calls (`mnc test`); None calls the real tools."""
    externals: RecordedExternals | None = None
    """Recorded `now()` and `uuid()` values (`mnc replay`); None takes fresh ones."""
    faults: FaultPlan | None = None
    """Faults to inject (`mnc run --inject/--chaos`, `mnc bench`); None injects none."""
    clock: Clock = SYSTEM_CLOCK
    """Times retry backoff, rate limits and call timeouts; benchmarks pass a virtual one."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RuntimeConfig:
        env = os.environ if environ is None else environ
        defaults = cls()

        # A `RunError`, which every command reports as an error with its help (exit 2).
        from mnlang.runtime.run import RunError

        def number(name: str, default: float, minimum: float) -> float:
            text = env.get(name, "").strip()
            if not text:
                return default
            fix = f"set `{name}` to a number of at least {minimum:g}, or unset it"
            try:
                value = float(text)
            except ValueError:
                raise RunError(f"{name} must be a number, not {text!r}", help=fix) from None
            if value < minimum:
                raise RunError(f"{name} must be at least {minimum:g}, not {text}", help=fix)
            return value

        return cls(
            commit_every=int(number("MNC_COMMIT_EVERY", defaults.commit_every, 1)),
            commit_ms=number("MNC_COMMIT_MS", defaults.commit_ms, 0),
            slow_call_ms=number("MNC_SLOW_CALL_MS", defaults.slow_call_ms, 0),
            workers=int(number("MNC_WORKERS", defaults.workers, 1)),
            short_wait_s=number("MNC_SHORT_WAIT_S", SHORT_WAIT_S, 0),
        )
