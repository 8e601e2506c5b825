"""Warm job processes: a script job runs in a fork of the server with the job's own settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from iadbench import warm
from iadbench.logs import step_interval, step_usage

SCRIPT = """
from iadbench.warm import entry


def main(sm):
    import json, os, sys

    preloaded = "numpy" in sys.modules  # the server imported it; this script never does
    from threadpoolctl import threadpool_info

    if sm.params.get("fail"):
        raise ValueError("bad input file")
    if sm.params.get("sleep"):
        open(sm.params["pid_file"], "w").write(str(os.getpid()))
        import time
        time.sleep(sm.params["sleep"])
    print("hello from the job")
    record = {
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "env": os.environ.get("JOB_VAR"),
        "preloaded": preloaded,
        "blas_threads": sorted({p["num_threads"] for p in threadpool_info()}),
    }
    open(sm.params["out"], "w").write(json.dumps(record))


entry(main, snakemake)
"""

# What Snakemake's script preamble does: build the `snakemake` object, then run the script.
CLIENT = """
import json, os, runpy, sys, types
params = json.loads(sys.argv[2])
sm = types.SimpleNamespace(threads=2, log=[params["log"]], params=params)
print("client", os.getpid(), flush=True)
runpy.run_path(sys.argv[1], init_globals={"snakemake": sm}, run_name="__main__")
"""


@pytest.fixture(scope="module")
def server():
    started = warm.start_server(preload=("numpy",), later=("threadpoolctl",))
    yield started
    started.stop()


def run_job(tmp_path: Path, cwd: Path, env: dict | None = None, **params):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    params = {"out": str(tmp_path / "out.json"), "log": str(tmp_path / "job.log"), **params}
    env = {**os.environ, "JOB_VAR": "from the job", **(env or {})}

    return subprocess.Popen(
        [sys.executable, "-c", CLIENT, str(script), json.dumps(params)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(proc) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_job_runs_in_a_fork_with_its_directory_environment_threads_and_streams(server, tmp_path):

    code, out, err = finished(run_job(tmp_path, cwd=tmp_path))
    assert code == 0, err
    record = json.loads((tmp_path / "out.json").read_text())
    client_pid = int(out.split()[1])
    assert record["pid"] != client_pid  # not the job's own process
    assert record["preloaded"] and record["cwd"] == str(tmp_path)
    assert record["env"] == "from the job"
    assert record["blas_threads"] == [2]  # the job's threads, not the server's 1
    assert "hello from the job" in out  # the job's stdout is the job process's
    log = tmp_path / "job.log"
    assert f"in a warm fork of process {server.process.pid}" in log.read_text()
    start, end = step_interval(log)
    cpu, rss = step_usage(log)
    assert start <= end and cpu >= 0 and rss > 0


def test_a_failing_job_exits_non_zero_with_its_traceback(server, tmp_path):
    code, _, err = finished(run_job(tmp_path, cwd=tmp_path, fail=True))
    assert code == 1
    assert "ValueError: bad input file" in err
    assert "step failed" in (tmp_path / "job.log").read_text()
    assert not (tmp_path / "out.json").exists()


def test_without_a_reachable_server_the_job_runs_in_its_own_process(server, tmp_path):

    env = {warm.SOCKET_ENV: str(tmp_path / "no-such-socket")}
    code, out, err = finished(run_job(tmp_path, cwd=tmp_path, env=env))
    assert code == 0 and "unusable" in err and "running here" in err
    assert json.loads((tmp_path / "out.json").read_text())["pid"] == int(out.split()[1])

    env = {warm.PREFIX_ENV: "/another/python/environment"}  # e.g. a conda job env: never forked
    code, out, err = finished(run_job(tmp_path, cwd=tmp_path, env=env))
    assert code == 0 and "unusable" not in err
    assert json.loads((tmp_path / "out.json").read_text())["pid"] == int(out.split()[1])


def test_killing_the_job_process_ends_its_fork(server, tmp_path):
    pid_file = tmp_path / "pid"
    proc = run_job(tmp_path, cwd=tmp_path, sleep=60, pid_file=str(pid_file))
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    fork = int(pid_file.read_text())
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{fork}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{fork}").exists()


def test_stopping_the_server_removes_its_socket_and_forgets_it(tmp_path):
    started = warm.start_server(preload=(), later=())
    assert os.environ[warm.SOCKET_ENV] == started.address
    started.stop()
    assert warm.SOCKET_ENV not in os.environ and warm.PREFIX_ENV not in os.environ
    assert started.process.returncode == 0
    assert not started.folder.exists()


def test_the_server_refuses_to_fork_with_other_threads_running(tmp_path):
    address = tmp_path / "s"
    code = textwrap.dedent(
        f"""
        import threading, time
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
        from iadbench.warm import serve
        serve({str(address)!r}, [], [])
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.PIPE,
    )
    assert "warm server stops" in proc.stderr and not address.exists()


def test_without_a_thread_list_warm_jobs_refuse_to_start(monkeypatch, tmp_path, capsys):
    """Off Linux (no /proc/self/task) the server could not check for threads before a fork."""
    from iadbench.errors import ConfigError

    monkeypatch.setattr(warm, "TASKS", tmp_path / "no-proc" / "self" / "task")
    before = {k: os.environ.get(k) for k in (warm.SOCKET_ENV, warm.PREFIX_ENV)}
    with pytest.raises(
        ConfigError, match=r"warm_jobs: true needs /proc/self/task.*warm_jobs: false"
    ):
        warm.start_server(preload=(), later=())
    assert {k: os.environ.get(k) for k in before} == before  # no job is pointed at a server

    address = tmp_path / "s"
    warm.serve(str(address), [], [])  # a server started anyway returns without listening
    assert not address.exists()
    assert "warm server not started: warm_jobs: true needs" in capsys.readouterr().err
