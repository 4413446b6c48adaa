"""A warm task worker, run inside a sandbox: fork one child per task of one owner.

Why: starting a sandbox and an interpreter costs tens of milliseconds, most of a
tiny task's life. One sandbox serves one owner's tasks one after another (see
warm.py for who may share); each task still gets a fresh process (forked from this
warm one, or exec'd for commands) in its own session, its own directories,
environment and rlimits, and is killed as a group at its wall-time limit. After
each task every other process of the sandbox's PID namespace is killed and the
private /tmp and /dev/shm emptied, so nothing of one task lives on into the next. Stdlib only.

Protocol: stdin is a SOCK_SEQPACKET socket to the host. The worker says
``{"ready": true}`` on it; then each message is one JSON request carrying (SCM_RIGHTS)
the write end of a pipe made for that task alone, on which the worker writes the one
JSON answer and closes it (``clean`` says the sandbox was cleared; the host retires it
otherwise). A task's process has every descriptor but 0-2 closed before its code runs,
so it can speak on neither; each answer repeats the request's id and per-task nonce,
and the host still checks for itself that the task's processes are gone before it
believes the answer.
"""

import ctypes
import json
import os
import resource
import runpy
import shutil
import signal
import socket
import sys
import threading
import time
import traceback


def _limits(lim: dict) -> None:
    mb = 1024 * 1024
    for res, value in ((resource.RLIMIT_AS, lim["memory_mb"] * mb),
                       (resource.RLIMIT_CPU, lim["cpu_seconds"]),
                       (resource.RLIMIT_NOFILE, lim["max_files"]),
                       (resource.RLIMIT_FSIZE, lim["max_file_mb"] * mb),
                       (resource.RLIMIT_CORE, 0)):
        soft, hard = resource.getrlimit(res)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        # CPU: SIGXCPU at the limit (reported as such), SIGKILL a second later.
        top = value
        if res == resource.RLIMIT_CPU:
            top = value + 1 if hard == resource.RLIM_INFINITY else min(value + 1, hard)
        resource.setrlimit(res, (value, top))


def _child(req: dict) -> None:
    os.setsid()
    d = req["dir"]
    fd = os.open(os.path.join(d, "task.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.closerange(3, 1 << 20)        # close_range(2): the worker's answer channel above all
    os.chdir(os.path.join(d, "work"))
    _limits(req["limits"])
    env = req["env"]
    if req.get("argv"):
        try:
            os.execvpe(req["argv"][0], req["argv"], env)  # noqa: S606 - the task's own argv
        except FileNotFoundError:
            os.write(2, f"vallum: command not found: {req['argv'][0]}\n".encode())
            os._exit(127)
        except PermissionError:
            os.write(2, f"vallum: command not executable: {req['argv'][0]}\n".encode())
            os._exit(126)
    os.environ.clear()
    os.environ.update(env)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    code = 0
    try:
        if req.get("module"):
            sys.argv = [req["module"], *req["args"]]
            sys.path.insert(0, env.get("PYTHONPATH", ""))
            runpy.run_module(req["module"], run_name="__main__", alter_sys=True)
        else:
            sys.argv = [req["script"], *req["args"]]
            sys.path.insert(0, os.path.dirname(req["script"]))
            runpy.run_path(req["script"], run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int) and exc.code is not None:
            print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - the task's own error, as python would print it
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run(req: dict) -> dict:
    nonce = req.pop("nonce", "")     # popped before the fork: the task never holds it
    return {**_wait(req), "nonce": nonce}


def _wait(req: dict) -> dict:
    pid = os.fork()
    if pid == 0:
        try:
            _child(req)
        finally:
            os._exit(127)
    expired = threading.Event()

    def expire() -> None:                # the wall-time limit: the task's whole group dies
        expired.set()
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(req["wall"], expire)
    timer.daemon = True
    timer.start()
    try:
        _, status = os.waitpid(pid, 0)   # blocking: the answer leaves as soon as it exits
    finally:
        timer.cancel()
    if expired.is_set():
        return {"id": req["id"], "exit": None, "timed_out": True, "clean": _clear()}
    try:
        os.killpg(pid, signal.SIGKILL)       # leftovers of the task's session die with it
    except (ProcessLookupError, PermissionError):
        pass
    clean = _clear()
    if os.WIFSIGNALED(status):
        return {"id": req["id"], "exit": 128 + os.WTERMSIG(status), "timed_out": False,
                "clean": clean}
    return {"id": req["id"], "exit": os.WEXITSTATUS(status), "timed_out": False, "clean": clean}


def _in_own_pid_namespace() -> bool:
    """Only then may kill(-1) be used: it reaches exactly this sandbox's processes."""
    return os.environ.get("VALLUM_WARM_PIDNS") == "1" and os.getpid() < 16


def _clear() -> bool:
    """Kill every process but this one and the namespace's init, reap, empty /tmp."""
    if not _in_own_pid_namespace():
        return False
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
    while True:                      # reap our own children (the rest go to init)
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                break
        except ChildProcessError:
            break
    for _ in range(200):             # wait until the namespace holds only init and us
        others = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, os.getpid())]
        if not others:
            break
        time.sleep(0.001)
    else:
        return False
    try:
        for tmp in ("/tmp", "/dev/shm"):  # noqa: S108 - the sandbox's private tmpfs mounts
            for name in os.listdir(tmp):
                path = os.path.join(tmp, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
    except OSError:
        return False
    return True


def main() -> int:
    try:                             # no ptrace (or core dumps) of this process by its tasks
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)     # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError):
        pass
    ctl = socket.socket(fileno=os.dup(0))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    ctl.send(json.dumps({"ready": True}).encode())
    while True:
        msg, fds, _, _ = socket.recv_fds(ctl, 1 << 22, 4)
        if not msg:
            return 0
        try:
            answer = _run(json.loads(msg)) if len(fds) == 1 else None
            if answer is not None:
                os.write(fds[0], json.dumps(answer).encode())
        finally:
            for fd in fds:
                os.close(fd)


if __name__ == "__main__":
    sys.exit(main())
