"""`run_bench`: the whole bench, from a suite folder to a `BenchResult`.

1. Every case runs once per repetition without faults (the clean runs); the places its
   clean run went through are where faults can go.
2. The fault runs (`mnlang.bench.schedule`), a few at a time; the runs of a retry storm
   all at once, on the system clock, so that they share the tools' limits.
3. The naive chain (`mnlang.bench.naive`) of every clean and fault run, with the same
   fault.
4. The metrics of the journal (`mnlang.metrics.compute_metrics`, as `mnc metrics` reads
   it), the naive chains' figures, the duplicated side effects both caused (from the
   world file), and the call rates the storms produced.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Final

import msgspec

from mnlang.bench import world
from mnlang.bench.duplicates import duplicate_costs
from mnlang.bench.harness import Harness, RunPlan
from mnlang.bench.naive import NaiveResult, run_chain
from mnlang.bench.schedule import CHAOS_RATE, Job, Site, schedule, sites_of
from mnlang.bench.suite import Case, load_suite
from mnlang.ir.hashing import program_hash
from mnlang.ir.model import IRProgram
from mnlang.metrics.compute import (
    ALL_CLASSES,
    UNCLASSED,
    ClassMetrics,
    MetricsReport,
    Ratio,
    journal_facts,
    per_success,
    report_of,
)
from mnlang.metrics.facts import Cost, Rates, RunFacts
from mnlang.runtime.faults import FAULT_CLASSES
from mnlang.stores.sqlite import SQLiteStore

DEFAULT_REPEAT: Final = 3
DEFAULT_WORKERS: Final = 4
STORMS_AT_ONCE: Final = 4
"""Retry storms of different tools run at the same time."""
Progress = Callable[[str, int, int], None]
"""Told (phase, done, total) as the bench goes."""


@dataclass
class NaiveSummary:
    chains: int = 0
    successful: int = 0
    attempts: int = 0
    model_calls: int = 0
    cost: Cost = field(default_factory=Cost)
    duplicates: int = 0
    duplicate_cost: Decimal = Decimal(0)
    """What the side effects performed twice cost (mnlang/bench/duplicate_costs.json)."""

    @property
    def completion(self) -> Ratio:
        return Ratio(self.successful, self.chains)

    @property
    def cost_per_successful(self) -> Decimal | None:
        """People's time included, duplicates not priced."""
        return per_success(self.cost.total, self.successful)

    @property
    def cost_per_successful_priced(self) -> Decimal | None:
        """People's time included and duplicates priced: the headline figure."""
        return per_success(self.cost.total + self.duplicate_cost, self.successful)

    @property
    def cost_per_successful_without_people(self) -> Decimal | None:
        return per_success(self.cost.without_people, self.successful)

    def add(self, result: NaiveResult) -> None:
        self.chains += 1
        self.successful += result.successful
        self.attempts += result.attempts
        self.model_calls += result.model_calls
        self.cost.add(result.cost)


@dataclass(frozen=True, slots=True)
class OutcomeDifference:
    """A run whose outcome, judged by the scenario's `expect`, differs between the
    runtime and the naive chain, with why."""

    run_id: str
    workflow_class: str
    fault: str
    """The fault class and its stated outcome (`network_failure: failed`), or `none`."""
    runtime: str
    """How the runtime's run ended: `completed`, `failed`, ...; `ok` when as expected."""
    naive: str
    why: str


def outcome_differences(
    jobs: list[Job], facts: list[RunFacts], naive: list[NaiveResult]
) -> list[OutcomeDifference]:
    """Every run the runtime and the naive chain judged differently, in run order."""
    ours = {f.run_id: f for f in facts}
    theirs = {n.chain.removeprefix(world.NAIVE_PREFIX): n for n in naive}
    out = []
    for job in jobs:
        run, chain = ours.get(job.run_id), theirs.get(job.run_id)
        if run is None or chain is None or run.successful == chain.successful:
            continue
        stated = job.expect or "same"
        fault = "none" if job.fault_class is None else f"{job.fault_class}: {stated}"
        out.append(
            OutcomeDifference(
                job.run_id,
                job.case.workflow_class or UNCLASSED,
                fault,
                "as expected" if run.successful else run.status,
                "as expected" if chain.successful else chain.status,
                _why(job, run, chain),
            )
        )
    return out


def _why(job: Job, run: RunFacts, chain: NaiveResult) -> str:
    if not run.successful and job.expect == "failed":
        return (
            "the fault's stated outcome is `failed` and the runtime stops there (an effect "
            "whose outcome it cannot know, or a decision it must not repeat); the chain "
            "restarts from the first step and performs what came before again"
        )
    if not run.successful:
        return f"the runtime's run ended {run.status}, not as the scenario expects"
    if chain.status == "completed":
        return "the chain completed with another result than the scenario expects"
    return (
        f"the chain ended {chain.status} after {chain.attempts} attempts: a failure the "
        "runtime retried or repaired restarts it, and its attempts ran out"
    )


@dataclass
class StormResult:
    case: str
    tool: str
    runs: int
    calls: int
    peak_per_second: int
    limit_per_second: float | None
    peak_concurrent: int
    limit_concurrent: int | None

    @property
    def held(self) -> bool:
        rate_ok = self.limit_per_second is None or self.peak_per_second <= self.limit_per_second
        slots_ok = self.limit_concurrent is None or self.peak_concurrent <= self.limit_concurrent
        return rate_ok and slots_ok


@dataclass
class BenchResult:
    path: str
    db: str
    seed: int
    repeat: int
    fault_classes: list[str]
    report: MetricsReport
    naive: dict[str, NaiveSummary]
    injected: Counter[str]
    storms: list[StormResult]
    runs: int
    phases: dict[str, tuple[ClassMetrics, NaiveSummary]]
    """Per kind of run (`clean`, `targeted`, `chaos`): the runtime's figures over all
    classes, and the naive chain's."""
    chaos_rate: float
    duplicates: int
    """Side effects the runtime's runs caused twice (by the receiving systems' records)."""
    redeliveries: int
    """Calls of an effect the receiving system recognised by its key and did not repeat."""
    errors: list[str]
    seconds: float = 0.0
    live: str | None = None
    """The provider that answered the agents in live mode (None: the scenarios' replies)."""
    model_options: str | None = None
    """The model options the bench gave the runtime's agents (`--cache-replies`,
    `--fallback-model`), in words; None without."""
    side_effects_recorded: int = 0
    """Performances the receiving systems recorded (0: the suite's tools do not go through
    `mnlang.bench.world`, so side effects performed twice cannot be seen)."""
    duplicate_cost: dict[str, Decimal] = field(default_factory=dict)
    """Per class (and `all`): what the runtime's side effects performed twice cost."""
    differences: list[OutcomeDifference] = field(default_factory=list)
    """Every run the two sides judged differently (docs/metrics.md, like for like)."""


def run_bench(
    path: str | Path,
    *,
    faults: Iterable[str] = FAULT_CLASSES,
    seed: int = 0,
    repeat: int = DEFAULT_REPEAT,
    chaos: float = CHAOS_RATE,
    db: str | None = None,
    workers: int = DEFAULT_WORKERS,
    progress: Progress | None = None,
    live: str | None = None,
    cache_ms: int | None = None,
    fallback: str | None = None,
) -> BenchResult:
    """Run the suite at `path`. The receiving systems' records live in a temporary folder,
    with the journal unless `db` names one; a bench that fails removes the folder, one
    that ends keeps only the journal it wrote there (its report names it)."""
    cases = load_suite(path)
    if live is not None:
        cases = [dataclasses.replace(case, live=live) for case in cases]
    if cache_ms is not None or fallback is not None:
        cases = [
            dataclasses.replace(case, program=tuned_program(case.program, cache_ms, fallback))
            for case in cases
        ]
    folder = Path(tempfile.mkdtemp(prefix="mnc-bench-"))
    try:
        result = _run_bench(
            path, cases, folder, set(faults), seed, repeat, chaos, db, workers, progress
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    result = dataclasses.replace(result, model_options=_model_options(cache_ms, fallback))
    if db is None:
        for name in os.listdir(folder):
            if name.startswith("world.db"):
                os.remove(folder / name)
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def _run_bench(
    path: str | Path,
    cases: list[Case],
    folder: Path,
    classes: set[str],
    seed: int,
    repeat: int,
    chaos: float,
    db: str | None,
    workers: int,
    progress: Progress | None,
) -> BenchResult:
    started = time.perf_counter()
    db_path = db or str(folder / "journal.db")
    world_path = str(folder / "world.db")
    tell = progress or (lambda phase, done, total: None)
    errors: list[str] = []
    with _world_at(world_path), SQLiteStore(db_path, durability="fast") as store:
        harness = Harness(store, db_path, world_path)
        rates = _rates()

        def drive(job: Job, real_clock: bool = False) -> None:
            plan = RunPlan(
                job.run_id,
                job.case,
                job.plan(),
                job.late,
                job.approval_at,
                job.expect,
                real_clock,
                {"repeat": job.repeat, "fault": job.fault_class},
            )
            try:
                harness.drive(plan)
            except Exception as e:  # one broken run must not end the bench
                errors.append(f"{job.run_id}: {type(e).__name__}: {e}")

        first: dict[str, Job] = {}
        clean, faulted = schedule(cases, {}, classes, seed, repeat, chaos)
        for job in clean:
            first.setdefault(job.case.id, job)
        _each(list(first.values()), drive, workers, tell, "clean runs")
        sites: dict[str, list[Site]] = {
            case_id: sites_of(job.case, store.read_journal(job.run_id))
            for case_id, job in first.items()
        }
        clean, faulted = schedule(cases, sites, classes, seed, repeat, chaos)
        done = {j.run_id for j in first.values()}
        _each([j for j in clean if j.run_id not in done], drive, workers, tell, "clean runs")
        single = [j for j in faulted if not j.storm]
        _each(single, drive, workers, tell, "fault runs")
        storms = _storms([j for j in faulted if j.storm], drive, sites, world_path, tell)

        def chain(job: Job) -> NaiveResult:
            return run_chain(
                job.case,
                job.run_id,
                rates,
                world_path,
                job.plan("raise"),
                job.late,
                job.approval_at,
            )

        naive_jobs = [*clean, *faulted]
        naive_results = _collect(naive_jobs, chain, workers, tell, "naive chains", errors)
        facts = journal_facts(store)
    report = report_of(facts)
    naive = _naive_summary(naive_results)
    phase_of = {j.run_id: j.phase for j in naive_jobs}
    phases: dict[str, tuple[ClassMetrics, NaiveSummary]] = {}
    for phase in ("clean", "targeted", "chaos"):
        ours = report_of(f for f in facts if phase_of.get(f.run_id) == phase).total
        theirs = _naive_summary(
            [
                n
                for n in naive_results
                if phase_of.get(n.chain.removeprefix(world.NAIVE_PREFIX)) == phase
            ]
        )[ALL_CLASSES]
        if ours.runs or theirs.chains:
            phases[phase] = (ours, theirs)
    class_of = {j.run_id: j.case.workflow_class or UNCLASSED for j in naive_jobs}
    class_of.update({f"{world.NAIVE_PREFIX}{k}": v for k, v in list(class_of.items())})
    duplicates, priced = _duplicates(world_path, class_of, rates.human_per_minute)
    for klass, summary in naive.items():
        summary.duplicates = duplicates.get(("naive", klass), 0)
        summary.duplicate_cost = priced.get(("naive", klass), Decimal(0))
    injected: Counter[str] = Counter()
    for m in report.classes:
        for fault, ratio in m.recovery_by_fault.items():
            injected[fault] += ratio.denominator
    return BenchResult(
        path=str(path),
        db=db_path,
        seed=seed,
        repeat=repeat,
        fault_classes=[c for c in FAULT_CLASSES if c in classes],
        report=report,
        naive=naive,
        injected=injected,
        storms=storms,
        runs=len(facts),
        phases=phases,
        chaos_rate=chaos,
        duplicates=sum(n for (who, _), n in duplicates.items() if who == "runtime"),
        redeliveries=world.redeliveries(world_path),
        errors=errors,
        seconds=time.perf_counter() - started,
        side_effects_recorded=len(world.performances(world_path)),
        duplicate_cost={k: v for (who, k), v in priced.items() if who == "runtime"},
        differences=outcome_differences(naive_jobs, facts, naive_results),
        live=cases[0].live if cases else None,
    )


def tuned_program(program: IRProgram, cache_ms: int | None, fallback: str | None) -> IRProgram:
    """The program with the bench's model options on its agents: replies kept for
    `cache_ms` (not for an agent that may call an effect, as E260 says) and `fallback`
    asked after the agent's own models. The naive chain drops both (`naive_program`)."""
    agents = {}
    for name, agent in program.agents.items():
        update: dict[str, object] = {}
        if cache_ms is not None and not any(tool in program.effects for tool in agent.tools):
            update["cache_ms"] = cache_ms
        if fallback is not None and fallback not in agent.models:
            update["fallback"] = [*(agent.fallback or []), fallback]
        agents[name] = msgspec.structs.replace(agent, **update) if update else agent
    changed = msgspec.structs.replace(program, agents=agents)
    return msgspec.structs.replace(changed, hash=program_hash(changed))


def _model_options(cache_ms: int | None, fallback: str | None) -> str | None:
    said = []
    if cache_ms is not None:
        said.append(f"replies cached for {cache_ms / 1000:g} s (agents without effects)")
    if fallback is not None:
        said.append(f"`{fallback}` asked when an agent's model fails")
    return "; ".join(said) or None


@contextmanager
def _world_at(path: str) -> Iterator[None]:
    """Point this process's tools (and its forked children) at the bench's world file."""
    world.create(path)
    before = os.environ.get(world.WORLD_ENV)
    os.environ[world.WORLD_ENV] = path
    try:
        yield
    finally:
        if before is None:
            del os.environ[world.WORLD_ENV]
        else:
            os.environ[world.WORLD_ENV] = before


def _rates() -> Rates:
    from mnlang.metrics.compute import DEFAULT_REVIEW_MINUTES
    from mnlang.models.prices import load_prices

    prices = load_prices()
    return Rates(prices.compute_per_cpu_second, prices.human_per_minute, DEFAULT_REVIEW_MINUTES)


def _each(
    jobs: list[Job], drive: Callable[[Job], None], workers: int, tell: Progress, phase: str
) -> None:
    done = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(drive, jobs):
            done += 1
            tell(phase, done, len(jobs))


def _collect(
    jobs: list[Job],
    work: Callable[[Job], NaiveResult],
    workers: int,
    tell: Progress,
    phase: str,
    errors: list[str],
) -> list[NaiveResult]:
    def safe(job: Job) -> NaiveResult | None:
        try:
            return work(job)
        except Exception as e:
            errors.append(f"naive {job.run_id}: {type(e).__name__}: {e}")
            return None

    out: list[NaiveResult] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for result in pool.map(safe, jobs):
            if result is not None:
                out.append(result)
            tell(phase, len(out), len(jobs))
    return out


def _storms(
    jobs: list[Job],
    drive: Callable[[Job, bool], None],
    sites: dict[str, list[Site]],
    world_path: str,
    tell: Progress,
) -> list[StormResult]:
    episodes: dict[str, list[Job]] = {}
    for job in jobs:
        episodes.setdefault(job.run_id.rsplit(".s", 1)[0], []).append(job)
    tools = {key: _storm_tool(runs, sites) for key, runs in episodes.items()}
    results: list[StormResult] = []
    pending = list(episodes)
    while pending:
        # Storms of different tools at once: each tool's limit is its own.
        batch: list[str] = []
        for key in pending:
            if len(batch) < STORMS_AT_ONCE and tools[key] not in {tools[k] for k in batch}:
                batch.append(key)
        pending = [k for k in pending if k not in batch]
        runs_now = [job for key in batch for job in episodes[key]]
        with ThreadPoolExecutor(max_workers=len(runs_now)) as pool:
            list(pool.map(lambda job: drive(job, True), runs_now))
        for key in batch:
            results.append(_storm_result(episodes[key], tools[key], world_path))
        tell("retry storms", len(results), len(episodes))
    return results


def _storm_tool(runs: list[Job], sites: dict[str, list[Site]]) -> str:
    case = runs[0].case
    assert runs[0].fault is not None
    step = runs[0].fault.at
    return next((s.callee for s in sites.get(case.id, []) if s.step == step), step or "")


def _storm_result(runs: list[Job], tool: str, world_path: str) -> StormResult:
    case = runs[0].case
    limit = next(
        (
            d.limit
            for d in (*case.program.tools.values(), *case.program.effects.values())
            if d.name.rsplit(".", 1)[-1] == tool
        ),
        None,
    )
    calls = world.calls_of(world_path, tool, {j.run_id for j in runs})
    return StormResult(
        case=case.id,
        tool=tool,
        runs=len(runs),
        calls=len(calls),
        peak_per_second=_peak_rate(calls),
        limit_per_second=limit.per_second if limit is not None else None,
        peak_concurrent=_peak_concurrency(calls),
        limit_concurrent=limit.concurrent if limit is not None else None,
    )


def _peak_rate(calls: list[tuple[float, float]]) -> int:
    """The most calls started within any one second."""
    starts = sorted(s for s, _ in calls)
    best = left = 0
    for right, start in enumerate(starts):
        while start - starts[left] >= 1.0:
            left += 1
        best = max(best, right - left + 1)
    return best


def _peak_concurrency(calls: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in calls] + [(e, -1) for _, e in calls])
    best = current = 0
    for _, step in edges:
        current += step
        best = max(best, current)
    return best


def _naive_summary(results: list[NaiveResult]) -> dict[str, NaiveSummary]:
    out: dict[str, NaiveSummary] = {ALL_CLASSES: NaiveSummary()}
    for result in results:
        klass = result.case.workflow_class or UNCLASSED
        out.setdefault(klass, NaiveSummary()).add(result)
        out[ALL_CLASSES].add(result)
    return out


def _duplicates(
    world_path: str, class_of: dict[str, str], human_per_minute: Decimal
) -> tuple[Counter[tuple[str, str]], dict[tuple[str, str], Decimal]]:
    """Side effects performed more than once for one run or naive chain, and what the
    extra performances cost, by who caused them (`runtime` or `naive`) and workflow
    class (and over all classes)."""
    table = duplicate_costs(human_per_minute)
    counts: Counter[tuple[str, str, str]] = Counter()
    for p in world.performances(world_path):
        counts[(p.chain, p.effect, p.args)] += 1
    out: Counter[tuple[str, str]] = Counter()
    priced: dict[tuple[str, str], Decimal] = {}
    for (chain, effect, args), n in counts.items():
        if n > 1:
            who = "naive" if chain.startswith(world.NAIVE_PREFIX) else "runtime"
            cost = (n - 1) * table.cost(effect, json.loads(args))
            for key in ((who, ALL_CLASSES), (who, class_of.get(chain, UNCLASSED))):
                out[key] += n - 1
                priced[key] = priced.get(key, Decimal(0)) + cost
    return out, priced
