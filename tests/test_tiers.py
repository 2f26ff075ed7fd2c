"""The fast tier's guard (tests/tiers.py): an unmarked test that starts a subprocess, listens
on a socket (a server) or trains fails, even where the code under test swallows the guard's
error; a test marked slow may do all of it. And the order a run takes: the fast tier, then the
longest slow files, then the rest."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.tiers import LONGEST_FILES, SlowWorkInFastTest, _guard

pytest_plugins = ("pytester",)


def _listen() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))  # finding a free port is no server: allowed
        server.listen()


def test_an_unmarked_test_may_not_start_a_process_serve_or_train() -> None:
    import torch

    weight = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([weight], lr=0.1)
    weight.sum().backward()  # gradients are fine: only a step trains
    starts = {"a subprocess": lambda: subprocess.run(["true"]),
              "a server": _listen,
              "training": optimizer.step}
    for what, start in starts.items():
        with pytest.raises(SlowWorkInFastTest, match="not marked @pytest.mark.slow"):
            start()
    assert len(_guard.seen) == 3 and float(weight.detach()) == 0.0
    if shutil.which("git"):
        subprocess.run(["git", "--version"], capture_output=True, check=True)  # milliseconds: allowed
    _guard.seen.clear()  # refused as asked: this test passes


def test_the_guard_fails_what_the_code_swallows_and_lets_marked_tests_be(pytester) -> None:
    pytester.makeini('[pytest]\nmarkers =\n    slow: slow\n')
    pytester.makeconftest("from tests.tiers import *  # noqa: F401,F403\n")
    pytester.makepyfile(test_inner="""
        import socket
        import pytest

        def serve():
            with socket.socket() as server:
                server.bind(("127.0.0.1", 0))
                server.listen()

        def test_swallows():
            try:
                serve()
            except Exception:
                pass

        @pytest.mark.slow
        def test_marked():
            serve()

        def test_pure():
            assert sum([1, 2]) == 3

        @pytest.fixture(scope="session")
        def ray_local():
            raise AssertionError("a session fixture that starts Ray must not even start")

        def test_uses_ray(ray_local):
            pass
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*test_uses_ray uses ray_local but is not marked*",
                                 "*test_swallows is not marked @pytest.mark.slow but it:*",
                                 "*listens on*(a server)*"])


@pytest.mark.parametrize("workers, order", [
    ("1", ["test_b_fast.py"] * 4 + ["test_grpo_e2e.py", "test_a_slow.py"]),
    # two shares of three, each the fast tests first: the long file in one, the short one in
    # the other, at the end of its share where an idle worker steals
    ("2", ["test_b_fast.py"] * 2 + ["test_grpo_e2e.py"]
     + ["test_b_fast.py"] * 2 + ["test_a_slow.py"]),
])
def test_each_workers_share_runs_the_fast_tier_first_then_its_longest_slow_files(
        pytester, monkeypatch, workers, order) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", workers)
    pytester.makeini('[pytest]\nmarkers =\n    slow: slow\n')
    pytester.makeconftest("from tests.tiers import *  # noqa: F401,F403\n")
    slow = "import pytest\n\n@pytest.mark.slow\ndef test_slow():\n    pass\n"
    fast = "".join(f"def test_fast_{i}():\n    pass\n" for i in range(4))
    pytester.makepyfile(test_a_slow=slow, test_b_fast=fast, test_grpo_e2e=slow)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--collect-only", "-q",
                                          "--import-mode=importlib")  # names taken in this run
    assert [line.split("::")[0] for line in result.outlines if "::" in line] == order


def test_the_longest_files_exist() -> None:
    assert {path.name for path in Path(__file__).parent.glob("test_*.py")} >= LONGEST_FILES.keys()
