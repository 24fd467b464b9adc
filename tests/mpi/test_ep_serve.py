#!/usr/bin/env python3
# `mpirun -np 2 moeinfer serve --expert-parallel` (ctest `ep_serve`, MOE_MPI builds): greedy
# /v1/completions sent concurrently (so steps mix sequences) give the texts of one `serve`
# process; /metrics counts the ranks; SIGTERM to rank 0 ends every rank with exit 0, and SIGTERM
# to mpirun ends the job; a rank that cannot open the file ends the job with its error. Every
# wait has a time limit: a hang fails the test.
# Usage: test_ep_serve.py MOEINFER FIXTURES MPIRUN
import json, os, re, signal, subprocess, sys, tempfile, threading, time, urllib.request

BIN, FIX, MPIRUN = sys.argv[1], sys.argv[2] + "/models", sys.argv[3]
MODEL = FIX + "/mixtral-f32.gguf"
# CI runs as root, which Open MPI refuses unless told; containers often forbid its
# cross-memory-attach copies.
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_btl_vader_single_copy_mechanism="none",
           OMPI_MCA_rmaps_base_oversubscribe="1")
MPI = [MPIRUN, "--bind-to", "none"]
# --deterministic: a request's text does not depend on what else its steps carried, so the
# concurrent runs of the two servers can be compared whatever the timing.
SERVE = ["serve", "-m", MODEL, "--port", "0", "-t", "1", "--parallel", "4", "--deterministic"]
PROMPTS = ["Once upon a time", "The capital of France is", "1, 2, 3, 4,",
           "In a hole in the ground there lived a hobbit. Not a nasty, dirty, wet hole"]
failures = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f"  {detail}"), flush=True)
    if not cond:
        failures.append(name)


def start(cmd, errfile):
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=open(errfile, "w"),
                         start_new_session=True)
    deadline = time.time() + 30
    while time.time() < deadline and p.poll() is None:
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", open(errfile).read())
        if m:
            port = int(m.group(1))
            while time.time() < deadline and p.poll() is None:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                    return p, port
                except Exception:
                    time.sleep(0.1)
        time.sleep(0.1)
    kill_group(p)
    raise SystemExit(f"FAIL server did not become ready: {open(errfile).read()}")


def kill_group(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


def complete_all(port):
    out = [None] * len(PROMPTS)

    def one(i):
        body = json.dumps({"model": "mixtral-f32", "prompt": PROMPTS[i], "max_tokens": 12,
                           "temperature": 0}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", body,
                                     {"Content-Type": "application/json"})
        out[i] = json.load(urllib.request.urlopen(req, timeout=30))["choices"][0]["text"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    return out


def metrics(port):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def rank_pids(mpirun_pid):
    """{rank: pid} of mpirun's children (local launch: the ranks are its children)."""
    ranks = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = open(f"/proc/{pid}/stat").read()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid != mpirun_pid:
                continue
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        for e in env:
            if e.startswith(b"OMPI_COMM_WORLD_RANK="):
                ranks[int(e.split(b"=")[1])] = int(pid)
    return ranks


def running(pid):
    """Whether the process exists and is not a zombie waiting to be reaped."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def wait(p, limit):
    try:
        return p.wait(limit)
    except subprocess.TimeoutExpired:
        kill_group(p)
        return "timeout"


with tempfile.TemporaryDirectory() as work:
    # 1. One process: the reference texts.
    p, port = start([BIN] + SERVE, f"{work}/one.err")
    one = complete_all(port)
    p.send_signal(signal.SIGTERM)
    check("one process: serve exits 0 on SIGTERM", wait(p, 20) == 0)

    # 2. Two ranks: the same texts; /metrics says 2 processes; SIGTERM to rank 0 ends both.
    err = f"{work}/two.err"
    p, port = start(MPI + ["-np", "2", BIN] + SERVE + ["--expert-parallel"], err)
    log = open(err).read()
    check("startup log names the ranks", "expert parallel: rank 0 of 2" in log, log)
    two = complete_all(port)
    check("-np 2: the texts of one process", None not in one and one == two, f"{one} vs {two}")
    again = complete_all(port)  # prefix caches and freed slots: truncates replayed too
    check("-np 2: the same texts again (cached prefixes)", again == one, f"{again}")
    check("/metrics: moeinfer_processes 2",
          re.search(r'^moeinfer_processes\{model="mixtral-f32"\} 2$', metrics(port), re.M)
          is not None)
    ranks = rank_pids(p.pid)
    check("two ranks found", sorted(ranks) == [0, 1], ranks)
    if 0 in ranks:
        os.kill(ranks[0], signal.SIGTERM)
    rc = wait(p, 20)
    check("SIGTERM to rank 0: every rank exits 0 (mpirun 0)", rc == 0,
          f"mpirun {rc}: {open(err).read()[-2000:]}")

    # 3. SIGTERM to mpirun (Ctrl-C): it signals every rank; the job ends, nothing hangs.
    p, port = start(MPI + ["-np", "2", BIN] + SERVE + ["--expert-parallel"], err)
    ranks = rank_pids(p.pid)
    p.send_signal(signal.SIGTERM)
    rc = wait(p, 20)
    deadline = time.time() + 15  # the ranks exit on their own (rank 0's shutdown message)
    while time.time() < deadline and any(running(pid) for pid in ranks.values()):
        time.sleep(0.1)
    alive = [r for r, pid in ranks.items() if running(pid)]
    check("SIGTERM to mpirun: the job ends in time", len(ranks) == 2 and rc != "timeout" and
          not alive, f"ranks {ranks}, rc {rc}, alive {alive}")

    # 4. A rank that cannot open the file: its error, the job ends.
    bad = MPI + ["-np", "1", BIN] + SERVE + ["--expert-parallel", ":", "-np", "1", BIN] + \
        [a if a != MODEL else f"{work}/missing.gguf" for a in SERVE] + ["--expert-parallel"]
    p = subprocess.Popen(bad, env=ENV, stdout=subprocess.DEVNULL,
                         stderr=open(f"{work}/bad.err", "w"), start_new_session=True)
    rc = wait(p, 30)
    log = open(f"{work}/bad.err").read()
    check("a rank cannot open the file: error, non-zero exit, no hang",
          rc not in (0, "timeout") and re.search(r"error: rank 1:.*missing\.gguf", log),
          f"rc {rc}: {log[-1500:]}")

print(f"{len(failures)} failed" if failures else "all passed")
sys.exit(1 if failures else 0)
