#!/usr/bin/env bash
# Installs Debian's SLURM controller, node daemon, clients and MUNGE for the srun tests.
# Idempotent and quick when everything is there. The packages' own services are never left
# running: tests start private daemons with scripts/slurm/cluster.sh instead.
set -euo pipefail

packages=(slurmctld slurmd slurm-client munge)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0

sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
echo "slurm/install: installing ${missing[*]}"

# Without systemd the postinst scripts start the services through invoke-rc.d; a policy-rc.d
# that answers 101 forbids that. Put one in place for the install unless one is already there.
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  own_policy=1
fi
cleanup() { if [ -n "$own_policy" ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT

$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

# Belt and braces: stop whatever system-wide daemon got started anyway (the packages' own
# pid files only; private clusters keep theirs under their own directory).
for d in slurmd slurmctld munged; do
  for pf in /run/$d.pid /run/slurm/$d.pid /var/run/$d.pid /run/munge/$d.pid /var/run/munge/$d.pid; do
    if [ -r "$pf" ] && pid="$(cat "$pf")" && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      echo "slurm/install: stopping $d ($pid) started by the package"
      $sudo kill "$pid" || true
    fi
  done
done
