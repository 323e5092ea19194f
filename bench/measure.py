"""Runs a command and prints its wall time, CPU time (user + system) and peak resident memory as JSON
(used by bench/run.ts). CPU time is the steadier figure when other jobs share the cores."""
import json
import resource
import subprocess
import sys
import time

start = time.perf_counter()
result = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"seconds": seconds, "cpuSeconds": usage.ru_utime + usage.ru_stime, "peakRssBytes": usage.ru_maxrss * 1024, "code": result.returncode,
                  "stderr": result.stderr.decode("utf8", "replace")[-500:]}))
