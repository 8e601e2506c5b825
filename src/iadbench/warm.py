"""Warm job processes: a local run's script jobs run in forks of one process that imported once.

A Snakemake script job is a fresh interpreter that imports torch, pandas and the library: 2-4 s
on a 2-core CPU, more than the work of most demo-sized jobs (docs/performance.md). For a local run
the Snakefile's ``onstart`` calls :func:`start_server`: one server process imports those modules
once and listens on a Unix socket. A job's own process then only sends its ``snakemake`` object,
working directory, environment and standard streams over the socket (:func:`entry`); a fork of the
server runs the script's body with them and the job's thread count, and the job's process waits
for the exit status. Snakemake still schedules, logs and cleans up every job as before, but its
``benchmark:`` file then times the waiting job process, not the work: a job's CPU time and peak
RSS are in its log's ``usage`` line (:mod:`iadbench.pipeline.timings` reads them from there).

Opt-in (``warm_jobs: true``; the default is false). Without a usable server (cluster jobs,
``warm_jobs: false``, a job in another Python environment, a server that did not start or
stopped, a fork made after CUDA was initialised) the body runs in the job's own process, as it
always did. The server checks before every fork that it runs no other thread, in
``/proc/self/task``; where that does not exist (not Linux) :func:`start_server` refuses to start
(``ConfigError`` naming ``warm_jobs``) rather than fork unchecked.
"""

from __future__ import annotations

import logging
import os
import pickle
import runpy
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from iadbench.errors import ConfigError

SOCKET_ENV = "IADBENCH_WARM_SOCKET"
PREFIX_ENV = "IADBENCH_WARM_PREFIX"

PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "PIL.Image",
    "threadpoolctl",
    "torch",
    "timm",
    "snakemake.script",
    "iadbench.pipeline.data",
    "iadbench.pipeline.features",
)
"""Imported before the first fork: what the data and feature jobs at the start of a run need
(about 5 s on 2 cores, most of it torch and timm). A module that is not installed is skipped."""

PRELOAD_LATER = (
    "faiss",
    "scipy.ndimage",
    "sklearn.metrics",
    "iadbench.pipeline.models",
    "iadbench.pipeline.evaluation",
    "iadbench.pipeline.timings",
)
"""Imported one by one between forks, while the first jobs run: what fits, scores and metrics
add. A job that connects meanwhile waits for one import at most."""

TASKS = Path("/proc/self/task")
"""Where Linux lists the threads of the process that reads it: the server's check before a fork."""

UNCHECKABLE = (
    "warm_jobs: true needs /proc/self/task (Linux), where the warm server checks before every "
    "fork that it runs no other thread (a fork taken beside a running thread can deadlock the "
    "job); this platform has none. Set warm_jobs: false (or --config warm_jobs=False): every job "
    "then runs in its own process"
)

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_HEADER = struct.Struct("!Q")
_STARTED = b"S"

# Not ``python -m iadbench.warm``: the server must share this module's _in_worker with the scripts.
_SERVER_MAIN = (
    "import sys; from iadbench.warm import serve; i = sys.argv.index('--'); "
    "serve(sys.argv[1], sys.argv[2:i], sys.argv[i + 1 :])"
)

_in_worker = False  # True in a fork of the server: entry() runs the body there


def entry(main: Callable, sm) -> None:
    """Run a workflow script's ``main(sm)`` in ``logged(sm.log[0])``, in a warm fork if served.

    Called at the bottom of every script in ``workflow/scripts`` with the ``snakemake`` object.
    """
    if not _in_worker:
        status = _forward(Path(main.__globals__["__file__"]), sm)
        if status is not None:
            sys.exit(status)
    from iadbench.logs import logged

    with logged(sm.log[0]):
        if _in_worker:
            logging.getLogger(__name__).info("in a warm fork of process %d", os.getppid())
        main(sm)


def _forward(script: Path, sm) -> int | None:
    """The exit status of ``script`` run by a warm fork, or None when no fork can run it."""
    address = os.environ.get(SOCKET_ENV)
    if not address or os.environ.get(PREFIX_ENV) != sys.prefix:
        return None  # no server, or one running another Python environment
    payload = pickle.dumps(
        {
            "script": str(script),
            "sm": sm,
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "sys_path": list(sys.path),
            "threads": int(getattr(sm, "threads", 1) or 1),
        }
    )
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(address)
        socket.send_fds(conn, [_HEADER.pack(len(payload))], [0, 1, 2])
        conn.sendall(payload)
        if conn.recv(1) != _STARTED:
            raise ConnectionError("the warm server closed the connection")
    except OSError as error:
        print(
            f"iadbench: warm server at {address} unusable ({error}); running here", file=sys.stderr
        )
        return None
    reply = b""
    while len(reply) < 4:
        chunk = conn.recv(4 - len(reply))
        if not chunk:
            print(
                f"iadbench: the warm process running {script.name} ended without a status",
                file=sys.stderr,
            )
            return 1
        reply += chunk
    return struct.unpack("!i", reply)[0]


class Server:
    """A running warm server (see :func:`start_server`); :meth:`stop` ends it."""

    def __init__(self, process: subprocess.Popen, folder: Path):
        self.process, self.folder = process, folder
        self.address = str(folder / "socket")

    def stop(self) -> None:
        """End the server (it also ends when this process does) and forget its address."""
        if os.environ.get(SOCKET_ENV) == self.address:
            del os.environ[SOCKET_ENV], os.environ[PREFIX_ENV]
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        _remove(self.address)


def start_server(preload: Sequence[str] = PRELOAD, later: Sequence[str] = PRELOAD_LATER) -> Server:
    """Start a server importing ``preload`` (then ``later``) and point this process's future jobs
    at it.

    Returns once the server listens, before it imports: a job that connects early waits in the
    socket's backlog (see ``_serve``) instead of running in its own process. Raises
    ``ConfigError`` (:data:`UNCHECKABLE`) where the server could not see its threads.
    """
    if not threads_checkable():
        raise ConfigError(UNCHECKABLE)
    folder = Path(tempfile.mkdtemp(prefix="iadbench-warm-"))
    address = folder / "socket"
    # No thread pools in the server: a fork keeps only the forking thread. Each fork then sets its
    # job's thread count (see _apply_threads).
    env = {**os.environ, **dict.fromkeys(_THREAD_VARS, "1")}
    env.pop(SOCKET_ENV, None)
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER_MAIN, str(address), *preload, "--", *later],
        stdin=subprocess.PIPE,
        env=env,
    )
    server = Server(process, folder)
    deadline = time.monotonic() + 30
    while not address.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # it binds before any import: a fraction of a second
    os.environ[SOCKET_ENV] = str(address)
    os.environ[PREFIX_ENV] = sys.prefix
    return server


def serve(address: str, preload: Sequence[str], later: Sequence[str] = ()) -> None:
    """The server: listen, import, fork one child per connection until stdin closes.

    Where it cannot see its threads it returns at once, without listening: every job then runs
    in its own process.
    """
    if not threads_checkable():
        print(f"iadbench: warm server not started: {UNCHECKABLE}", file=sys.stderr)
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the jobs and for Snakemake
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(128)
    try:
        _serve(listener, preload, later)
    finally:
        listener.close()
        _remove(address)


def _remove(address: str) -> None:
    """Delete the socket and its temporary folder (whichever of server and client gets there)."""
    for path, remove in ((address, os.unlink), (os.path.dirname(address), os.rmdir)):
        try:
            remove(path)
        except OSError:
            pass


def _serve(listener: socket.socket, preload: Sequence[str], later: Sequence[str]) -> None:
    """Import ``preload``; then accept and fork, importing ``later`` one module per idle moment.

    A job that connects during the first imports waits in the socket's backlog: forked earlier,
    it would import torch and timm itself while the server does, three processes competing for
    two cores (the demo grid's first feature jobs took 6-7 s instead of 1.8 s that way).
    """
    import selectors

    for name in preload:
        _import(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(sys.stdin, selectors.EVENT_READ)
    pending = list(later)
    while True:
        others = _other_threads()
        if others:
            # Forking with other threads alive can deadlock the child: from here on every job
            # runs in its own process (its connection is refused).
            print(f"iadbench: warm server stops: threads {others} running", file=sys.stderr)
            return
        events = selector.select(timeout=0 if pending else None)
        if not events:
            _import(pending.pop(0))
        for key, _ in events:
            if key.fileobj is sys.stdin:
                if not sys.stdin.buffer.read1(1):
                    return  # the Snakemake process ended or stopped the server
                continue
            conn, _ = listener.accept()
            if os.fork() == 0:
                status = 1
                try:  # whatever happens, this fork never returns into the server loop
                    selector.close()
                    listener.close()
                    status = _child(conn)
                finally:
                    os._exit(status)
            conn.close()


def _import(name: str) -> None:
    """Import ``name`` if it is installed."""
    try:
        __import__(name)
    except ImportError:
        pass  # not installed: the jobs that need it fail in their own way


def threads_checkable() -> bool:
    """Whether this process can list its threads (:data:`TASKS`), as the server must."""
    return TASKS.is_dir()


def _other_threads() -> list[str]:
    """Threads besides this one, which a fork would lose mid-work. jemalloc's background thread
    (pyarrow's allocator) is allowed: jemalloc's own fork handlers rebuild it. Called only where
    :func:`threads_checkable` (``serve`` returns at once elsewhere)."""
    names = [
        (t / "comm").read_text().strip() for t in TASKS.iterdir() if t.name != str(os.getpid())
    ]
    return [name for name in names if name != "jemalloc_bg_thd"]


def _child(conn: socket.socket) -> int:
    """Run one job in this fork; its status goes back to the waiting job process."""
    global _in_worker
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        header, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
        (size,) = _HEADER.unpack(header)
        data = bytearray()
        while len(data) < size:
            chunk = conn.recv(min(size - len(data), 1 << 20))
            if not chunk:
                return 1
            data += chunk
        request = pickle.loads(data)
        if getattr(sys.modules.get("torch.cuda"), "_is_in_bad_fork", lambda: False)():
            return 1  # CUDA was initialised before the fork; the job process runs the job
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        conn.sendall(_STARTED)
    except Exception:
        return 1  # nothing started: the job process runs the job itself
    _in_worker = True
    threading.Thread(target=_exit_with_client, args=(conn,), daemon=True).start()
    status = 0
    try:
        _become_job(request)
        runpy.run_path(
            request["script"], init_globals={"snakemake": request["sm"]}, run_name="__main__"
        )
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        traceback.print_exc()
        status = 1
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    conn.sendall(struct.pack("!i", status))
    return status


def _become_job(request: dict) -> None:
    """Take the job process's directory, environment, import path and threads."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None  # re-read TMPDIR (Snakemake's tmpdir resource) on next use
    time.tzset()
    sys.argv = [request["script"]]
    sys.path[:] = request["sys_path"] + [p for p in sys.path if p not in request["sys_path"]]
    _apply_threads(request["threads"])


def _exit_with_client(conn: socket.socket) -> None:
    """End this fork when the job process that sent it goes away (killed, or Snakemake stopped)."""
    try:
        conn.recv(1)
    except OSError:
        pass
    os._exit(1)


def _apply_threads(count: int) -> None:
    """Size the thread pools the fork inherited (1 in the server) to the job's ``threads``, and
    the environment for the libraries the job has yet to import, as Snakemake does."""
    os.environ.update(dict.fromkeys(_THREAD_VARS, str(count)))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)
    if any(name in sys.modules for name in ("numpy", "faiss")):
        from threadpoolctl import threadpool_limits  # BLAS and OpenMP: numpy, sklearn, faiss

        threadpool_limits(count)
