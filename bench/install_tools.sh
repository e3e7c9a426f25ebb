#!/usr/bin/env bash
# Install the load generator (wrk) and the reference server (nginx) from Debian when missing.
# Idempotent: does nothing when both are already on PATH; runs `apt-get update` only when the
# package lists do not know a package we need.
set -euo pipefail

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
{ command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } || need+=(nginx)
command -v curl >/dev/null 2>&1 || need+=(curl)

if [ ${#need[@]} -eq 0 ]; then
  echo "bench tools present: wrk, nginx, curl"
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
# The Debian nginx package may start a system service on port 80; the benchmarks never use
# it (they run their own nginx with their own config), so leave it as the package set it up.
echo "bench tools installed: ${need[*]}"
