#!/usr/bin/env bash
# Install Debian's chromium and chromium-driver when missing: the dashboard's browser test
# (tests/integration/test_dashboard_browser.py) drives them with Selenium. Idempotent; never
# lets a tool download a browser of its own. The test skips, saying why, when they are absent.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  echo "browser present: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
cand="$(apt-cache policy chromium 2>/dev/null | awk '/Candidate:/ {print $2}')"
if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
  $SUDO apt-get update -qq
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
echo "installed: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
