"""Runs a command and prints its wall time and peak resident memory as JSON (used by bench/run.ts)."""
import json
import resource
import subprocess
import sys
import time

start = time.perf_counter()
result = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
seconds = time.perf_counter() - start
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"seconds": seconds, "peakRssBytes": peak_kb * 1024, "code": result.returncode,
                  "stderr": result.stderr.decode("utf8", "replace")[-500:]}))
