#!/usr/bin/env bash
# A private SLURM cluster (one node by default) for the srun tests, run as root, with every file
# under DIR.
#   cluster.sh start DIR   writes DIR/slurm.conf, starts munged, slurmctld and slurmd, waits until
#                          the node is idle and prints the exports clients need (eval-able):
#                              export SLURM_CONF=DIR/slurm.conf
#   cluster.sh stop DIR    cancels its jobs and stops the three daemons (pid files under DIR).
# Environment (optional): MEDSEG_SLURMCTLD_PORT, MEDSEG_SLURMD_PORT (default: free random ports),
# MEDSEG_SLURM_CPUS (per node; default: the machine's CPUs, at least 2), MEDSEG_SLURM_TIMEOUT
# (seconds, 30), MEDSEG_SLURM_NODENAME (default medsegnode; e.g. "$(hostname -s)" for a name that
# resolves), MEDSEG_SLURM_NODES (default 1; N > 1 runs N slurmd on 127.0.0.1, each with its own
# port, named NAME1..NAMEN, for `srun -N 2`).
# Several clusters (other DIRs) can run side by side: own ports, munge socket, spool and state.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd="$1"
[ "$cmd" = stop ] && [ ! -d "$2" ] && exit 0
mkdir -p "$2"
dir="$(cd "$2" && pwd)"
conf="$dir/slurm.conf"
name="${MEDSEG_SLURM_NODENAME:-medsegnode}"
nnodes="${MEDSEG_SLURM_NODES:-1}"
nodes=("$name"); ((nnodes == 1)) || { nodes=(); for ((k = 1; k <= nnodes; k++)); do nodes+=("$name$k"); done; }
export SLURM_CONF="$conf"
PATH="$PATH:/usr/sbin:/sbin"  # the daemons live in sbin, which a non-login PATH may lack

log() { echo "slurm/cluster: $*" >&2; }

# The pid in DIR/FILE.pid, if that process still runs DAEMON ($2, default FILE): no pid reuse.
live_pid() {
  local pid
  pid="$(cat "$dir/$1.pid" 2>/dev/null)" || return 1
  [ -n "$pid" ] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q "${2:-$1}" && echo "$pid"
}

# The daemon wrote DIR/FILE.pid (a little after it forked into the background) and is gone.
exited() { [ -s "$dir/$1.pid" ] && ! live_pid "$@" >/dev/null; }

# Running and not a zombie (the container's PID 1 may be slow to reap the daemons).
alive() { [ -r "/proc/$1/stat" ] && ! awk '{ exit $3 != "Z" }' "/proc/$1/stat" 2>/dev/null; }

stop() {  # stop [GRACE]: seconds between SIGTERM and SIGKILL (default 10)
  # Cancel this cluster's jobs first, so that no slurmstepd or task outlives its slurmd.
  local pids=() f pid i
  if [ -f "$conf" ] && live_pid slurmctld >/dev/null && live_pid munged >/dev/null; then
    scancel --quiet --partition=debug 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.1
    done
  fi
  # All at once: none needs the others to shut down. slurmd waits for its steps (KillWait after a
  # cancel) and, still registering after a failed start, ignores SIGTERM for MessageTimeout (10 s).
  for f in "$dir"/slurmd-*.pid "$dir"/slurmctld.pid "$dir"/munged.pid; do
    f="$(basename "$f" .pid)"
    pid="$(live_pid "$f" "${f%%-*}")" && { kill "$pid" 2>/dev/null || true; pids+=("$pid"); }
  done
  for ((i = 0; i < ${1:-10} * 10; i++)); do
    for pid in "${pids[@]}"; do alive "$pid" && { sleep 0.1; continue 2; }; done
    break
  done
  for pid in "${pids[@]}"; do alive "$pid" && { log "pid $pid still runs after SIGTERM; killing it"; kill -9 "$pid" 2>/dev/null || true; }; done
  rm -f "$dir"/*.pid
}

# Runs a daemon without the caller's descriptors beyond 0-2: a daemon holding a caller's pipe
# would keep whoever reads it to the end waiting for as long as the cluster runs.
spawn() (
  for fd in /proc/self/fd/*; do fd="${fd##*/}"; ((fd <= 2)) || eval "exec $fd>&-"; done
  exec "$@"
)

# A TCP port below the ephemeral range (so no outgoing connection takes it before the daemon
# binds it) that no socket uses now (/proc/net/tcp*, any state).
free_port() {  # free_port [PORTS TO AVOID...]
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    [[ " $* " != *" $p "* ]] || continue
    grep -q ":$(printf %04X "$p") " /proc/net/tcp /proc/net/tcp6 2>/dev/null || { echo "$p"; return; }
  done
}

fail() {
  # Another process took a randomly chosen port between the choice and the bind: new ports.
  local attempt="${MEDSEG_SLURM_ATTEMPT:-1}"
  if ((attempt < 3)) && [ -z "${MEDSEG_SLURMCTLD_PORT:-}${MEDSEG_SLURMD_PORT:-}" ] &&
    grep -qs "Address already in use" "$dir"/log/slurm*.log; then
    log "port taken; retrying with other ports"
    stop 1
    MEDSEG_SLURM_ATTEMPT=$((attempt + 1)) exec "$0" start "$dir"
  fi
  log "error: $*"
  for f in "$dir"/log/*.log; do [ -f "$f" ] && { echo "--- tail of $f" >&2; tail -n 25 "$f" >&2; }; done
  stop 1
  exit 1
}

start() {
  live_pid slurmctld >/dev/null && { log "error: a cluster already runs in $dir; stop it first"; exit 1; }
  stop 1  # leftovers of a crashed run
  [ ${#dir} -le 80 ] || { log "error: DIR is too long for unix socket paths (max 80 chars): $dir"; exit 1; }
  mkdir -p "$dir/log" "$dir/state" "$dir/spool" "$dir/munge"
  chmod 755 "$dir/munge"  # munged wants its socket directory searchable by all
  rm -rf "${dir:?}/state/"* "${dir:?}/spool/"* "${dir:?}/log/"*  # nothing from an earlier run

  local ctld_port ports cpus host k n
  ctld_port="${MEDSEG_SLURMCTLD_PORT:-$(free_port)}"
  ports=("${MEDSEG_SLURMD_PORT:-$(free_port "$ctld_port")}")
  for ((k = 1; k < nnodes; k++)); do ports+=("$(free_port "$ctld_port" "${ports[@]}")"); done
  cpus="$(nproc)"; ((cpus >= 2)) || cpus=2
  cpus="${MEDSEG_SLURM_CPUS:-$cpus}"
  host="$(hostname -s)"

  # munged: its own key, socket, pid, log and seed; --force because it runs as root.
  [ -s "$dir/munge/munge.key" ] || { dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none; chmod 600 "$dir/munge/munge.key"; }
  spawn munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" \
    || fail "munged did not start"

  # %n: each slurmd (node) has its own spool, pid and log file.
  # ProctrackType/TaskPlugin: no cgroups in containers. config_overrides: the node counts as
  # having CPUs=$cpus even where the machine has fewer, so `srun -n 2` fits on a 1-CPU machine.
  # The empty PlugStackConfig keeps the system's SPANK plugins out.
  : >"$dir/plugstack.conf"
  cat >"$conf" <<EOF
ClusterName=medseg
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=${ports[0]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
PlugStackConfig=$dir/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SchedulerType=sched/builtin
KillWait=2
MinJobAge=10
InactiveLimit=0
EOF
  for ((k = 0; k < nnodes; k++)); do
    echo "NodeName=${nodes[k]} NodeHostname=$host NodeAddr=127.0.0.1 Port=${ports[k]} CPUs=$cpus RealMemory=1024 State=UNKNOWN"
  done >>"$conf"
  echo "PartitionName=debug Nodes=$(IFS=,; echo "${nodes[*]}") Default=YES MaxTime=INFINITE State=UP" >>"$conf"

  spawn slurmctld -f "$conf" -i || fail "slurmctld did not start"
  for n in "${nodes[@]}"; do
    mkdir -p "$dir/spool/$n"
    spawn slurmd -f "$conf" -N "$n" || fail "slurmd $n did not start"
  done

  # Wait until every node registered and is "idle" (not "idle*": not responding).
  local timeout="${MEDSEG_SLURM_TIMEOUT:-30}" t0=$SECONDS state=""
  while ((SECONDS - t0 < timeout)); do
    exited slurmctld && fail "slurmctld exited"
    for n in "${nodes[@]}"; do exited "slurmd-$n" slurmd && fail "slurmd $n exited"; done
    # timeout: a foreign process on the port would hold sinfo for MessageTimeout (10 s).
    state="$(timeout 3 sinfo -h -N -o %T 2>/dev/null || true)"
    [ "$(grep -cx idle <<<"$state")" = "$nnodes" ] && break
    sleep 0.2
  done
  [ "$(grep -cx idle <<<"$state")" = "$nnodes" ] ||
    fail "nodes ${nodes[*]} not idle after ${timeout}s (states: '${state//$'\n'/ }')"
  log "cluster up in $dir: nodes ${nodes[*]} ($cpus CPUs each), slurmctld :$ctld_port, slurmd :${ports[*]}, after $((SECONDS - t0))s"
  echo "export SLURM_CONF=$conf"
}

case "$cmd" in
  start) start ;;
  stop) stop 10 ;;
  *) usage ;;
esac
