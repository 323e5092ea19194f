#!/usr/bin/env bash
# Stops the cluster scripts/slurm-up.sh started: cancels every job, then stops slurmd and slurmctld
# (munged is left running: other software on the machine may authenticate with it).
set -uo pipefail
[ "$(id -u)" = 0 ] || { echo "slurm-down: must run as root" >&2; exit 1; }
grep -qsF '# written by soup scripts/slurm-up.sh' /etc/slurm/slurm.conf || exit 0
scancel --user=root >/dev/null 2>&1 || true
for pidfile in /run/soup-slurmd.pid /run/soup-slurmctld.pid; do
  [ -s "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || continue
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
done
exit 0
