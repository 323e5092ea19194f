#!/usr/bin/env bash
# Starts a single-node Slurm cluster on this machine (as root), for the tests and benchmarks of
# `--executor slurm`: munged, then slurmctld, then slurmd, and waits until the node is idle and a
# batch job runs. Debian's slurm-wlm 22.05 and munge must be installed (scripts/test-deps.sh does it).
# Settings are those seen to work in containers (no cgroups, no accounting) plus fast scheduling, so a
# short job is queued, started and reported in well under a second. Idempotent: a cluster this script
# started is left running. Exits non-zero, saying why, when the daemons cannot start.
set -euo pipefail
fail() { echo "slurm-up: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "must run as root (it starts munged, slurmctld and slurmd)"
for tool in munged slurmctld slurmd sbatch sinfo; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install slurm-wlm munge, or run scripts/test-deps.sh)"
done
conf=/etc/slurm/slurm.conf
marker='# written by soup scripts/slurm-up.sh'
if [ -e "$conf" ] && ! grep -qF "$marker" "$conf"; then fail "$conf exists and was not written by this script: this machine has its own Slurm; not touching it"; fi
state=/var/spool/soup-slurm
log=/var/log/soup-slurm
mkdir -p /etc/slurm "$state/ctld" "$state/d" "$log" /run/munge
host=$(hostname -s)
cpus=$(nproc)
cat > "$conf" <<CONF
$marker
ClusterName=soup
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MessageTimeout=5
TCPTimeout=2
KillWait=1
MinJobAge=600
ReturnToService=2
SlurmdTimeout=30
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=/run/soup-slurmctld.pid
SlurmdPidFile=/run/soup-slurmd.pid
SlurmctldLogFile=$log/slurmctld.log
SlurmdLogFile=$log/slurmd.log
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=soup Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
chown munge:munge /run/munge
if ! pgrep -x munged >/dev/null; then
  [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=128 count=1 status=none; chown munge:munge /etc/munge/munge.key; chmod 600 /etc/munge/munge.key; }
  su -s /bin/sh munge -c munged || fail "munged did not start"
fi
alive /run/soup-slurmctld.pid || slurmctld || fail "slurmctld did not start; see $log/slurmctld.log"
alive /run/soup-slurmd.pid || slurmd || fail "slurmd did not start; see $log/slurmd.log"
for _ in $(seq 100); do
  # idle, or mix when jobs of an earlier run still run on it (a restarted controller keeps them).
  state=$(sinfo -h -n "$host" -o %t 2>/dev/null || true)
  if [ "$state" = idle ] || [ "$state" = mix ]; then
    out=$(timeout 30 srun -N1 -t 1 hostname 2>&1) || fail "srun hostname failed: $out"
    exit 0
  fi
  # A node left down by an earlier run comes back once slurmd has registered.
  scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
  sleep 0.2
done
fail "the node $host did not become idle in 20 s (sinfo says: $(sinfo -h -o '%t %E' 2>&1)); see $log/slurmctld.log and $log/slurmd.log"
