"""A python3 program as a user would run it: a worker thread, a dict of hashes, a log file.

READY/PASS protocol of tools/testprogs: prints `READY python PID`, then one counter line every
~100 ms; on SIGTERM it re-checks its data, that the worker thread still advances and that its
log is intact, and prints `PASS python N` (or FAIL) as its last line.
"""
import hashlib
import os
import signal
import sys
import threading
import time

log_path = sys.argv[1]
data = {i: hashlib.sha256(str(i).encode()).hexdigest() for i in range(50000)}
ticks = 0
worker_ticks = 0


def worker():
    global worker_ticks
    while True:
        worker_ticks += 1
        time.sleep(0.05)


def on_term(*_):
    before = worker_ticks
    time.sleep(0.3)
    problems = []
    if any(data[i] != hashlib.sha256(str(i).encode()).hexdigest() for i in range(0, 50000, 97)):
        problems.append("hashes changed")
    if worker_ticks <= before:
        problems.append("worker thread stopped")
    with open(log_path) as f:
        lines = [int(x) for x in f.read().split()]
    if lines != list(range(1, len(lines) + 1)):
        problems.append("log has gaps or repeats")
    print(f"{'FAIL' if problems else 'PASS'} python {ticks} {' '.join(problems)}", flush=True)
    sys.exit(1 if problems else 0)


signal.signal(signal.SIGTERM, on_term)
threading.Thread(target=worker, daemon=True).start()
log = open(log_path, "a")
print(f"READY python {os.getpid()}", flush=True)
while True:
    ticks += 1
    log.write(f"{ticks}\n")
    log.flush()
    print(ticks, flush=True)
    time.sleep(0.1)
