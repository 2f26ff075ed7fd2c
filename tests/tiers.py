"""The two test tiers, and the guard that keeps the fast one fast.

``python -m pytest -m "not slow"`` is the tier for development: pure in-process tests. A test
that starts Ray, a subprocess or a server, or trains (steps an optimizer), must be marked
``@pytest.mark.slow``; CI and ``python -m pytest -q -n 2`` run both tiers. The guard fails any test
without the mark that does one of those things, when it does it, so the fast tier stays fast as
tests are added: an audit hook (``sys.addaudithook``) sees every process start and fork of
the interpreter (Ray's own start included), a wrapped ``socket.listen`` sees a server, and a
global optimizer-step hook of torch sees training. The fast tier also runs first in a full run
(first in each pytest-xdist worker's share, see ``schedule_for_workers``), so no Ray or server
left by a slow test in the same process can make an unmarked test pass that uses it (an idle
worker that steals from another's queue may still run a few fast tests after slow ones).

The tier must also stay under 90 s on a 2-core machine: a test that decodes at length with the
tiny model, or costs more than ``FAST_TEST_CPU_S`` of CPU for another reason, is marked slow
too; the run's summary names the unmarked tests over that (a hint, never a failure).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass, field

import pytest

SLOW = "slow"
SLOW_FIXTURES = {"ray_local"}  # fixtures that start Ray or a server for the whole session
# Wall seconds of the slow test files that take 15 s or more, measured in ``-n 2`` runs on the
# 2-core box (``--durations``, docs/development.md): a scheduling hint only, never a check.
# Each pytest-xdist worker's share of the queue gets about as many of these seconds as the
# others' (see schedule_for_workers).
LONGEST_FILES = {"test_finetune_story.py": 190, "test_vllm_engine.py": 130,
                 "test_grpo_e2e.py": 105, "test_cluster.py": 80, "test_resume_sampling.py": 80,
                 "test_pipeline.py": 65, "test_edges.py": 45,
                 "test_openai_main_job.py": 25, "test_transfer_main_job.py": 25,
                 "test_grpo_loop.py": 25, "test_probe_pipeline.py": 20, "test_reader.py": 20,
                 "test_command_errors.py": 20, "test_bad_inputs.py": 15,
                 "test_tracking_server.py": 15}
SLOW_TEST_S = 1.5  # the hint for a slow test of any other file (most take a second or two)
# CPU seconds an unmarked test may take before the run's summary names it (a hint, not a
# failure: CPU time is less noisy than wall time, but no test fails on a timing)
FAST_TEST_CPU_S = 2.0
CPU_PROPERTY = "fast_tier_cpu_s"  # a report's user property: the CPU time of an unmarked test
_STARTED = pytest.StashKey[float]()

# audit event -> what it means for the tier
GUARDED_EVENTS = {
    "subprocess.Popen": "starts a subprocess",
    "os.system": "starts a subprocess",
    "os.posix_spawn": "starts a subprocess",
    "os.spawn": "starts a subprocess",
    "os.exec": "replaces the process",
    "os.fork": "forks a process",
    "os.forkpty": "forks a process",
}
# what an unmarked test may start all the same, answering in milliseconds: git (the provenance
# of an MLflow run, and GitPython's check of its version when MLflow first imports it) and uname
# (platform.platform(), when MLflow's telemetry module is first imported)
ALLOWED_PROGRAMS = {"git", "uname"}


class SlowWorkInFastTest(RuntimeError):
    """A test without ``@pytest.mark.slow`` started Ray, a subprocess or a server, or trained."""


@dataclass
class _Guard:
    test: str | None = None  # the node id of the unmarked test now running, if any
    seen: list[str] = field(default_factory=list)
    training_watched: bool = False
    hooked: bool = False

    def flag(self, what: str) -> None:
        self.seen.append(what)
        raise SlowWorkInFastTest(f"{self.test} {what} but is not marked @pytest.mark.slow "
                                 "(see tests/tiers.py)")


_guard = _Guard()


def _audit(event: str, args: tuple) -> None:
    if _guard.test is None:
        return
    if not _guard.training_watched:
        _watch_training()
    what = GUARDED_EVENTS.get(event)
    if what is not None and not (event == "subprocess.Popen" and _program(args) in ALLOWED_PROGRAMS):
        _guard.flag(f"{what} ({event}: {repr(args[:2])[:200]})")


def _program(popen_args: tuple) -> str:
    executable = popen_args[0]
    return str(executable).rsplit("/", 1)[-1] if executable else ""


def _guarded_listen(listen):
    """``socket.listen``, refused to an unmarked test: a server listens (a socket bound only
    to find a free port does not)."""

    def guarded(sock, *args):
        if _guard.test is not None:
            _guard.flag(f"listens on {sock.getsockname()} (a server)")
        return listen(sock, *args)

    return guarded


def _watch_training() -> None:
    """Hook torch's optimizer steps once ``torch.optim`` has been imported (by any test)."""
    optimizer = sys.modules.get("torch.optim.optimizer")
    register = getattr(optimizer, "register_optimizer_step_pre_hook", None)
    if register is None:
        return
    _guard.training_watched = True
    register(_on_optimizer_step)


def _on_optimizer_step(optimizer, args, kwargs) -> None:
    if _guard.test is not None:
        _guard.flag(f"trains ({type(optimizer).__name__}.step)")


def share_the_cores() -> None:
    """Under pytest-xdist, each worker's torch (and the commands and Ray workers its tests start)
    gets its share of the cores as OpenMP threads: with every worker's intra-op threads on all
    cores, a saturated box spends CPU on threads waiting for each other."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        if "torch" in sys.modules:  # read at its import: already too late for the variable
            sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_configure(config: pytest.Config) -> None:
    share_the_cores()
    config.pluginmanager.register(_CpuLedger(), "crossmath-fast-tier-cpu")
    if not _guard.hooked:  # an audit hook cannot be removed: it does nothing outside unmarked tests
        sys.addaudithook(_audit)
        socket.socket.listen = _guarded_listen(socket.socket.listen)
        _guard.hooked = True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the run as ``schedule_for_workers`` says, for the pytest-xdist workers of this run
    (each worker collects, and must collect the same order)."""
    items[:] = schedule_for_workers(items, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


def schedule_for_workers(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """The run's order, made of one share per worker, each share the fast tests first, then its
    slow files from the longest down.

    ``--dist worksteal`` hands worker i the next ``len(remaining) // (workers - i)`` items of
    this order, and an idle worker later takes the tail of the busiest one's queue; a running
    test cannot move. So the slow files (kept whole: a module's fixtures start once) are dealt
    out longest first, each to the share with the fewest expected seconds (``LONGEST_FILES``),
    the fast tests then fill each share to the size the worker will be sent, and each share ends
    with its shortest files, the ones an idle worker steals. One worker: one share."""
    fast = [item for item in items if item.get_closest_marker(SLOW) is None]
    slow_files: dict[str, list[pytest.Item]] = {}
    for item in items:
        if item.get_closest_marker(SLOW) is not None:
            slow_files.setdefault(item.path.name, []).append(item)

    def seconds(name: str) -> float:
        return LONGEST_FILES.get(name, SLOW_TEST_S * len(slow_files[name]))

    shares: list[list[str]] = [[] for _ in range(max(1, workers))]
    load = [0.0] * len(shares)
    for name in sorted(slow_files, key=lambda name: (-seconds(name), name)):
        share = load.index(min(load))
        shares[share].append(name)
        load[share] += seconds(name)
    ordered: list[pytest.Item] = []
    for index, names in enumerate(shares):
        slow = [item for name in names for item in slow_files[name]]
        size = (len(items) - len(ordered)) // (len(shares) - index)
        n_fast = len(fast) if index == len(shares) - 1 else max(0, size - len(slow))
        ordered += fast[:n_fast] + slow
        del fast[:n_fast]
    return ordered


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Guard an unmarked test's setup, call and teardown (its fixtures' work counts); the
    guard of an enclosing test (a test of this guard runs pytest inside a test) comes back
    after it."""
    enclosing = _guard.test, _guard.seen
    _guard.test = None if item.get_closest_marker(SLOW) is not None else item.nodeid
    _guard.seen = []
    item.stash[_STARTED] = time.process_time()
    try:
        return (yield)
    finally:
        _guard.test, _guard.seen = enclosing


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """An unmarked test that did slow work fails, even where the code under test swallowed
    the guard's exception."""
    report = yield
    if _guard.test == item.nodeid and _guard.seen:
        if report.passed:
            report.outcome = "failed"
            report.longrepr = (f"{item.nodeid} is not marked @pytest.mark.slow but it:\n  "
                               + "\n  ".join(dict.fromkeys(_guard.seen)))
        _guard.seen = []  # reported once, in the phase that did it
    if call.when == "teardown" and _guard.test == item.nodeid:
        # on the report, so that it reaches the main process when pytest-xdist runs the test
        report.user_properties.append((CPU_PROPERTY, time.process_time() - item.stash[_STARTED]))
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A session fixture that starts Ray fails an unmarked test before it starts (a failed
    session fixture would fail every later test that uses it)."""
    if item.get_closest_marker(SLOW) is None:
        used = SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if used:
            pytest.fail(f"{item.nodeid} uses {', '.join(sorted(used))} but is not marked "
                        "@pytest.mark.slow (see tests/tiers.py)", pytrace=False)


class _CpuLedger:
    """The CPU time of each unmarked test, gathered from the reports (with pytest-xdist, the
    workers' reports reach the main process) and summed up at the end of the run."""

    def __init__(self) -> None:
        self.by_test: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == CPU_PROPERTY:
                self.by_test[report.nodeid] = value

    def pytest_terminal_summary(self, terminalreporter, exitstatus: int,
                                config: pytest.Config) -> None:
        """The fast tier's CPU time, and the unmarked tests that took more than their share."""
        spent = self.by_test
        over = sorted(((cpu, test) for test, cpu in spent.items() if cpu > FAST_TEST_CPU_S),
                      reverse=True)
        if not over and config.get_verbosity() < 0:
            return
        terminalreporter.write_sep("-", f"fast tier: {len(spent)} tests, "
                                        f"{sum(spent.values()):.1f} s of CPU; over "
                                        f"{FAST_TEST_CPU_S:g} s each: {len(over)}")
        for cpu, test in over:
            terminalreporter.write_line(f"{cpu:6.1f} s  {test}  (make it cheaper or mark it slow)")
