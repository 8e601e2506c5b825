"""Start and stop a throwaway single-node Slurm on this machine, for tests and benchmarks.

    python tests/cluster/slurm_node.py start STATE_DIR   # returns once the node is idle
    python tests/cluster/slurm_node.py stop STATE_DIR    # cancels jobs, stops the daemons

Needs root and Debian's ``slurmctld slurmd slurm-client munge``. munged, slurmctld and slurmd
run undaemonized, with their keys, state, logs and PIDs in STATE_DIR, so ``stop`` ends exactly
the processes ``start`` began (after cancelling the node's jobs). The one GPU is emulated for
scheduling only (a GRES on /dev/null); nothing here touches a real device.

Job steps drop ``SLURM_CONF`` before their inner ``srun``, so the config must live at the default
path: ``start`` writes /etc/slurm/slurm.conf (and gres.conf) only when they are absent or carry
this script's marker, and ``stop`` removes them again. A real cluster's config is never touched.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
ETC = Path("/etc/slurm")
MARKER = "# iadbench throwaway test node, written by tests/cluster/slurm_node.py; state: "
DAEMONS = ("slurmd", "slurmctld", "munged")  # stop order: reverse of start
PARTITIONS = ("cpu", "gpu")  # the names profiles/slurm uses; both hold the one node


def missing() -> str | None:
    """Why a test node cannot be started here, or None when it can."""
    absent = [b for b in ("slurmctld", "slurmd", "munged", "sbatch") if not shutil.which(b)]
    if absent:
        return (
            f"Slurm is not installed (no {', '.join(absent)}); "
            "apt-get install slurmctld slurmd slurm-client munge"
        )
    if os.geteuid() != 0:
        return "the single-node Slurm runs its daemons as root; run the tests as root"
    conf = ETC / "slurm.conf"
    if conf.exists() and not _ours(conf):
        return f"{conf} belongs to a real Slurm installation; not starting a test node over it"
    return None


def _ours(path: Path) -> bool:
    return path.read_text().startswith(MARKER)


def _node_hardware() -> dict[str, str]:
    """CPU layout and memory as slurmd detects them, so the node never registers as INVAL."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(re.findall(r"(\w+)=(\S+)", out.splitlines()[0]))
    keys = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
    return {k: fields[k] for k in keys if k in fields}


def _munge_dir(state: Path) -> Path:
    """munged wants every directory above its socket searchable by all, unlike pytest's tmp."""
    digest = hashlib.sha1(str(state).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"iadbench-munge-{digest}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slurm_conf(state: Path, host: str, hw: dict[str, str]) -> str:
    node = " ".join(f"{k}={v}" for k, v in hw.items())
    mem_per_cpu = max(256, int(hw["RealMemory"]) // int(hw["CPUs"]) // 2)
    lines = [
        f"{MARKER}{state}",
        "ClusterName=iadbench",
        f"SlurmctldHost={host}(127.0.0.1)",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={_munge_dir(state)}/munge.socket",
        f"StateSaveLocation={state}/ctld",
        f"SlurmdSpoolDir={state}/spool",
        f"SlurmctldPidFile={state}/slurmctld.pid",
        f"SlurmdPidFile={state}/slurmd.pid",
        f"SlurmctldLogFile={state}/slurmctld.log",
        f"SlurmdLogFile={state}/slurmd.log",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "MpiDefault=none",
        "SchedulerType=sched/backfill",
        # Cores and memory are consumable, so small jobs share the node ...
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        # ... and a job without --mem does not take all of it.
        f"DefMemPerCPU={mem_per_cpu}",
        "GresTypes=gpu",
        "ReturnToService=2",
        # No accounting: finished jobs are known to squeue only while younger than MinJobAge,
        # which must outlast the executor's status polling interval.
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "MinJobAge=600",
        f"NodeName={host} NodeAddr=127.0.0.1 {node} Gres=gpu:1 State=UNKNOWN",
    ]
    for name in PARTITIONS:
        default = "YES" if name == PARTITIONS[0] else "NO"
        lines.append(f"PartitionName={name} Nodes={host} Default={default} MaxTime=INFINITE")
    return "\n".join(lines) + "\n"


def _spawn(state: Path, name: str, cmd: list[str]) -> None:
    log = open(state / f"{name}.out", "wb")  # the daemon writes to it until it exits
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    (state / f"{name}.launched").write_text(str(proc.pid))


def _launched(state: Path, name: str) -> int | None:
    pidfile = state / f"{name}.launched"
    return int(pidfile.read_text()) if pidfile.exists() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of this process is dead for our purposes.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def _wait_for(predicate, timeout: float, what: str, state: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    logs = "\n".join(
        f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
        for p in sorted(state.glob("*.out")) + sorted(state.glob("*.log"))
    )
    raise RuntimeError(f"single-node Slurm: {what} within {timeout:.0f} s\n{logs}")


def _node_state(host: str) -> str:
    out = subprocess.run(
        ["sinfo", "-h", "-N", "-n", host, "-o", "%T"], capture_output=True, text=True
    )
    return out.stdout.strip().split("\n")[0] if out.returncode == 0 else ""


def start(state: Path, timeout: float = 60) -> str:
    """Start munged, slurmctld and slurmd; return the node name once it accepts jobs.

    If the node does not come up, whatever was started is stopped again before the error.
    """
    reason = missing()
    if reason:
        raise RuntimeError(reason)
    conf = ETC / "slurm.conf"
    if conf.exists():
        previous = Path(conf.read_text().splitlines()[0][len(MARKER) :])
        pid = _launched(previous, "slurmctld")
        if previous != state.resolve() and pid and _alive(pid):
            raise RuntimeError(f"another test node from {previous} is running (slurmctld {pid})")
    state = state.resolve()
    for sub in ("ctld", "spool"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    _munge_dir(state).mkdir(mode=0o755, exist_ok=True)
    key = state / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    host = socket.gethostname().split(".")[0]
    ETC.mkdir(parents=True, exist_ok=True)
    conf.write_text(_slurm_conf(state, host, _node_hardware()))
    # A GRES without a device file is dropped (and the node goes INVAL): /dev/null stands in.
    (ETC / "gres.conf").write_text(f"{MARKER}{state}\nName=gpu File=/dev/null Count=1\n")

    try:
        return _start_daemons(state, host, key, timeout)
    except BaseException:
        stop(state)
        raise


def _start_daemons(state: Path, host: str, key: Path, timeout: float) -> str:
    socket_path = _munge_dir(state) / "munge.socket"
    _spawn(
        state,
        "munged",
        [
            "munged",
            "--foreground",
            f"--key-file={key}",
            f"--socket={socket_path}",
            f"--pid-file={state}/munged.pid",
            f"--seed-file={state}/munged.seed",
        ],
    )
    _wait_for(socket_path.exists, 10, "munged did not open its socket", state)
    _spawn(state, "slurmctld", ["slurmctld", "-D", "-i"])
    _wait_for(
        lambda: subprocess.run(["scontrol", "ping"], capture_output=True).returncode == 0,
        timeout,
        "slurmctld did not answer",
        state,
    )
    _spawn(state, "slurmd", ["slurmd", "-D"])
    _wait_for(
        lambda: _node_state(host) == "idle", timeout, f"node {host} did not become idle", state
    )
    return host


def stop(state: Path, timeout: float = 20) -> None:
    """Cancel every job on the test node, stop its daemons and remove the config it wrote."""
    state = state.resolve()
    ctld = _launched(state, "slurmctld")
    if ctld and _alive(ctld):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(
                ["squeue", "-h", "-t", "PD,R,CG", "-o", "%i"], capture_output=True, text=True
            )
            jobs = out.stdout.split() if out.returncode == 0 else []
            if not jobs:
                break
            subprocess.run(["scancel", *jobs], capture_output=True)
            time.sleep(0.5)
    for name in DAEMONS:
        pid = _launched(state, name)
        if pid is None or not _alive(pid):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    for path in (ETC / "slurm.conf", ETC / "gres.conf"):
        if path.exists() and path.read_text().startswith(f"{MARKER}{state}\n"):
            path.unlink()
    shutil.rmtree(_munge_dir(state), ignore_errors=True)


def workflow_rules() -> list[str]:
    """Names of the rules in rules/*.smk."""
    return [
        name
        for smk in sorted((REPO / "rules").glob("*.smk"))
        for name in re.findall(r"^(?:rule|checkpoint) (\w+):", smk.read_text(), re.MULTILINE)
    ]


def node_profile(dest: Path, mem_mb: int = 1000) -> Path:
    """profiles/slurm adapted to this node: small memory requests, squeue, quick polling.

    Partitions, GPU requests and every other setting stay as the real profile has them.
    """
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    overrides = profile.setdefault("set-resources", {})
    for rule in workflow_rules():
        overrides.setdefault(rule, {})["mem_mb"] = mem_mb
    profile["default-resources"]["mem_mb"] = mem_mb
    profile["slurm-status-command"] = "squeue"  # no accounting here; MinJobAge is 600
    profile["slurm-init-seconds-before-status-checks"] = 1
    profile["latency-wait"] = 5
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("state", type=Path, help="directory for keys, state, logs and PIDs")
    args = parser.parse_args()
    if args.action == "start":
        print(start(args.state))
    else:
        stop(args.state)


if __name__ == "__main__":
    sys.exit(main())
