"""Retake the MLflow UI screenshots of docs/tracking.md.

    python docs/screenshots.py [--workdir DIR] [--out docs/images]

1. In ``--workdir`` (a temporary folder by default), runs the README's command
   ``python -m crossmath.run -m model=oracle,random,tiny-random`` (skipped when the folder
   already holds an ``mlflow.db``);
2. starts ``mlflow server`` over that ``mlflow.db`` on a free local port;
3. opens the UI in headless Chromium (Selenium driving Debian's ``chromium`` and
   ``chromium-driver``: ``apt-get install chromium chromium-driver``, ``pip install -c
   constraints.txt selenium``; ``CHROMIUM`` and ``CHROMEDRIVER`` name other binaries) and
   saves the pages docs/tracking.md shows, as palette PNGs of a few dozen KB each.

Needs no network: the UI is served by the local server, the models are the baselines and the
tiny random VLM.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from mlflow.tracking import MlflowClient
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from crossmath.tracking.local_server import mlflow_server
from crossmath.tracking.ui_view import runs_page_url

README_COMMAND = ["-m", "crossmath.run", "-m", "model=oracle,random,tiny-random"]
EXPERIMENT = "crossmath"
WINDOW = (1500, 900)
LOAD_TIMEOUT_S = 120  # the UI fetches runs, metrics and artifacts after the page loads
SETTLE_S = 3  # then draws them
PALETTE_COLOURS = 128


def make_experiment(workdir: Path) -> Path:
    """The README's multirun in ``workdir``: three evaluations in ``workdir/mlflow.db``."""
    database = workdir / "mlflow.db"
    if not database.exists():  # as a shell in workdir runs it: PWD names the MLflow store
        env = {**os.environ, "PWD": str(workdir),
               "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
        subprocess.run([sys.executable, *README_COMMAND], cwd=workdir, env=env, check=True)
    if not database.exists():
        raise FileNotFoundError(f"the README's command wrote no {database}")
    return database


@contextmanager
def browser() -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                     "--disable-dev-shm-usage", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    driver = webdriver.Chrome(
        service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")),
        options=options)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver: WebDriver, url: str, shows: str, height: int = WINDOW[1]) -> None:
    """Open ``url`` and wait until an element holding the text ``shows`` is there."""
    driver.set_window_size(WINDOW[0], height)
    driver.get(url)
    driver.refresh()  # a new hash route in the same page keeps the last page's state
    WebDriverWait(driver, LOAD_TIMEOUT_S).until(expected_conditions.presence_of_element_located(
        (By.XPATH, f"//*[contains(text(), '{shows}')]")))
    time.sleep(SETTLE_S)


def close_assistant(driver: WebDriver, server: str) -> None:
    """The UI opens its chat assistant beside every page on a first visit: keep it closed."""
    open_page(driver, f"{server}/#/", shows="Experiments")
    driver.execute_script("localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');")


def save(driver: WebDriver, path: Path) -> None:
    """The page as a palette PNG: the UI's flat colours survive, the file shrinks ~5x."""
    with Image.open(io.BytesIO(driver.get_screenshot_as_png())) as shot:
        shot.convert("RGB").quantize(PALETTE_COLOURS).save(path, optimize=True)
    print(f"{path} ({path.stat().st_size // 1024} KB)")


def take_screenshots(server: str, database: Path, out: Path) -> None:
    client = MlflowClient(f"sqlite:///{database}")
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    (oracle,) = client.search_runs([experiment], "tags.model = 'oracle'")
    run_page = f"{server}/#/experiments/{experiment}/runs/{oracle.info.run_id}"
    machine_learning = "workflowType=machine_learning"
    out.mkdir(parents=True, exist_ok=True)
    with browser() as driver:
        close_assistant(driver, server)
        open_page(driver, runs_page_url(server, experiment), shows="acc/gap_T-TI")
        save(driver, out / "tracking-runs.png")
        open_page(driver, f"{server}/#/experiments/{experiment}/runs?compareRunsMode=CHART&"
                          f"{machine_learning}", shows="acc/text")
        save(driver, out / "tracking-charts.png")
        open_page(driver, f"{run_page}?{machine_learning}", shows="acc/gap_T-TI")
        save(driver, out / "tracking-run.png")
        open_page(driver, f"{run_page}/artifacts/evaluation_table.json?{machine_learning}",
                  shows="puzzle_0_00000", height=1150)
        save(driver, out / "tracking-table.png")
        open_page(driver, f"{server}/#/experiments/{experiment}/runs?compareRunsMode=ARTIFACT&"
                          f"{machine_learning}", shows="puzzle_0_00000")
        save(driver, out / "tracking-evaluation.png")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the README's command runs (kept); default: a temporary one")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "images")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="crossmath-screenshots-") as scratch:
        workdir = (args.workdir or Path(scratch)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        database = make_experiment(workdir)
        with mlflow_server(f"sqlite:///{database}", workdir) as server:
            take_screenshots(server, database, args.out.resolve())


if __name__ == "__main__":
    main()
