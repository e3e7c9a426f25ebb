#!/usr/bin/env bash
# Install the load generator (wrk), the reference server (nginx) and the load balancer of the
# cluster benchmark (haproxy) from Debian when missing. Idempotent: does nothing when all are
# already there; runs `apt-get update` only when the package lists do not know a package we need.
set -euo pipefail

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
{ command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } || need+=(nginx)
{ command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; } || need+=(haproxy)
command -v curl >/dev/null 2>&1 || need+=(curl)

if [ ${#need[@]} -eq 0 ]; then
  echo "bench tools present: wrk, nginx, haproxy, curl"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

# apt-get update only when a needed package has no install candidate yet.
for pkg in "${need[@]}"; do
  cand="$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')"
  if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
    $SUDO apt-get update -qq
    break
  fi
done

echo "installing: ${need[*]}"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian nginx and haproxy packages may start a system service (nginx on port 80, haproxy
# with its own config); the benchmarks never use them (they run their own with their own
# configs on 127.0.0.1), so leave them as the packages set them up.
echo "bench tools installed: ${need[*]}"
