#!/usr/bin/env python3
"""A stand-in coding agent for the exec-gate tests (tests/tests/gate.rs).

One LLM inference call to the mock server over TLS (stdlib HTTPS through the system OpenSSL, as
agent.py does), which makes this process a zero-config agent, then the steps of STEPS_JSON at
once (no pause: how soon after the call the gate has the agent in scope is the gate's problem).

Usage: gate_agent.py [--no-llm] BASE_URL CA_FILE STEPS_JSON RESULT_JSON
  --no-llm  skip the call (a non-agent process running the same steps; BASE_URL and CA_FILE are
            then ignored, pass "-")

STEPS_JSON is a JSON list. Each element is either
  "CMD"     a shell command, run twice: `bash -c CMD`, then as a direct argv (shlex.split(CMD));
  {"memfd": SRC, "argv": [...], "via": "fd" | "proc"}
            copy the program SRC into a memfd_create file and, in a forked child, execve it by
            fd (execveat AT_EMPTY_PATH) or through /proc/self/fd/N;
  {"rmtree": DIR}
            shutil.rmtree(DIR) in this process itself (no exec, no shell);
  {"once": CMD}
            a shell command run once, `bash -c CMD` (a deletion: a second run finds nothing);
  {"llm": true}
            one more LLM call, in this process (its model traffic, which must never be paused);
  {"loop": PROGRAM, "count": N, "progress": FILE, "stop_file": FILE}
            run PROGRAM (an absolute path, no arguments) up to N times, timing each run; every 25
            runs write the number done to FILE; stop early once stop_file exists.

Each program is resolved on PATH here (shutil.which) and exec'd by its path: CPython's own PATH
search goes on to the next directory after any error, EPERM included, so a refused `$TMPFS/rm`
would otherwise be retried as /usr/bin/rm.

RESULT_JSON gets {"pid": N, "steps": [...]}; a command step is {"cmd", "bash": RUN, "argv": RUN},
a memfd step {"memfd", "argv", "via", "run": RUN}, a once step {"once", "run": RUN}, an rmtree step {"rmtree", "error"}, an llm step {"llm", "error"}, where RUN is {"rc", "signal", "errno",
"seconds", "stderr"}: rc is the exit code (None when killed or not started), signal the signal
that killed it, errno the error of a failed exec (PermissionError: 1). A loop step is
{"loop", "done", "failed", "max_seconds", "slow": [[i, seconds] ... over 1 s]}.
"""

import json
import os
import shlex
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request


def llm_call(base, ca):
    ctx = ssl.create_default_context(cafile=ca)
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64,
                       "messages": [{"role": "user", "content": "clean up"}]}).encode()
    req = urllib.request.Request(base + "/v1/messages", data=body, headers={
        "content-type": "application/json", "x-api-key": "sk-ant-api03-mocksecretmocksecretmocksecret",
        "anthropic-version": "2023-06-01", "x-mock-usage": "input=11,output=7"})
    with urllib.request.urlopen(req, context=ctx) as r:
        r.read()


def run(argv):
    """One process, exec'd by its resolved path: what became of it."""
    out = {"rc": None, "signal": None, "errno": None, "seconds": 0.0, "stderr": ""}
    exe = shutil.which(argv[0]) or argv[0]
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, executable=exe, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        out["seconds"] = time.monotonic() - t0
        out["stderr"] = p.stderr[-400:].decode(errors="replace")
        if p.returncode < 0:
            out["signal"] = -p.returncode
        else:
            out["rc"] = p.returncode
    except OSError as e:
        out["seconds"] = time.monotonic() - t0
        out["errno"] = e.errno
        out["stderr"] = f"{type(e).__name__}: {e}"
    return out


def memfd(step):
    """Runs a memfd copy of step["memfd"] in a forked child."""
    with open(step["memfd"], "rb") as f:
        data = f.read()
    fd = os.memfd_create(os.path.basename(step["memfd"]), 0)
    os.write(fd, data)
    r, w = os.pipe()
    os.set_inheritable(w, False)
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            target = fd if step["via"] == "fd" else f"/proc/self/fd/{fd}"
            os.execve(target, step["argv"], dict(os.environ))
        except OSError as e:
            os.write(w, str(e.errno).encode())
        os._exit(127)
    os.close(w)
    err = os.read(r, 32)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    out = {"rc": None, "signal": None, "errno": int(err) if err else None,
           "seconds": time.monotonic() - t0, "stderr": ""}
    if os.WIFSIGNALED(status):
        out["signal"] = os.WTERMSIG(status)
    elif not err:
        out["rc"] = os.WEXITSTATUS(status)
    return out


def loop(step):
    prog, count = step["loop"], step["count"]
    progress, stop = step.get("progress"), step.get("stop_file")
    done = failed = 0
    worst = 0.0
    slow = []
    for i in range(count):
        if stop and os.path.exists(stop):
            break
        t0 = time.monotonic()
        try:
            rc = subprocess.run([prog], executable=prog, stdin=subprocess.DEVNULL).returncode
        except OSError:
            rc = -1000
        dt = time.monotonic() - t0
        done += 1
        failed += rc != 0
        worst = max(worst, dt)
        if dt > 1.0:
            slow.append([i, dt])
        if progress and done % 25 == 0:
            with open(progress + ".new", "w") as f:
                f.write(str(done))
            os.replace(progress + ".new", progress)
    if progress:
        with open(progress + ".new", "w") as f:
            f.write(str(done))
        os.replace(progress + ".new", progress)
    return {"loop": prog, "done": done, "failed": failed, "max_seconds": worst, "slow": slow}


def rmtree(path):
    """Deletes a tree from this process itself: no exec, no shell."""
    try:
        shutil.rmtree(path)
        return {"rmtree": path, "error": None}
    except OSError as e:
        return {"rmtree": path, "error": f"{type(e).__name__}: {e}"}


def main():
    args = sys.argv[1:]
    no_llm = args[:1] == ["--no-llm"]
    if no_llm:
        args = args[1:]
    base, ca, steps_file, result_file = args
    with open(steps_file) as f:
        steps = json.load(f)
    if not no_llm:
        llm_call(base, ca)
    results = []
    for step in steps:
        if isinstance(step, str):
            results.append({"cmd": step, "bash": run(["bash", "-c", step]), "argv": run(shlex.split(step))})
        elif "memfd" in step:
            results.append(dict(step, run=memfd(step)))
        elif "loop" in step:
            results.append(loop(step))
        elif "rmtree" in step:
            results.append(rmtree(step["rmtree"]))
        elif "once" in step:
            results.append({"once": step["once"], "run": run(["bash", "-c", step["once"]])})
        elif "llm" in step:
            try:
                llm_call(base, ca)
                results.append({"llm": True, "error": None})
            except OSError as e:
                results.append({"llm": True, "error": str(e)})
        else:
            raise SystemExit(f"unknown step {step!r}")
    with open(result_file + ".new", "w") as f:
        json.dump({"pid": os.getpid(), "steps": results}, f)
    os.replace(result_file + ".new", result_file)


if __name__ == "__main__":
    main()
