#!/usr/bin/env bash
# Run the Postman collection with newman against a real directory started here, then stop it.
#
#   bash scripts/run_postman.sh [extra newman args...]     (what `make postman` runs)
#
# newman comes from the npm registry into ./node_modules (pinned by package.json and
# package-lock.json; installed only when missing). The directory runs on a free loopback port
# with SQLite in a temporary folder, and is stopped by its PID whatever happens. The exit code
# is newman's: non-zero when any assertion of the collection fails. POSTMAN_COLLECTION=FILE runs
# another collection the same way.
set -euo pipefail
cd "$(dirname "$0")/.."

COLLECTION=${POSTMAN_COLLECTION:-docs/postman/p2p-directory.postman_collection.json}
NEWMAN=node_modules/.bin/newman
if [[ -n "${PYTHON:-}" ]]; then PY=$PYTHON
elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python
else PY=python3
fi

if [[ ! -x $NEWMAN ]]; then
  command -v npm >/dev/null || { echo "run_postman: npm is needed to install newman (apt-get install npm)" >&2; exit 2; }
  echo "run_postman: installing newman into ./node_modules (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

WORK=$(mktemp -d)
DIR_PID=""
cleanup() {
  if [[ -n $DIR_PID ]] && kill -0 "$DIR_PID" 2>/dev/null; then
    kill -TERM "$DIR_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$DIR_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DIR_PID" 2>/dev/null || true
    wait "$DIR_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PYTHONUNBUFFERED=1 "$PY" -m directory_api --host 127.0.0.1 --port 0 \
  --database "sqlite:///$WORK/directory.db" >"$WORK/directory.log" 2>&1 &
DIR_PID=$!

URL=""
for _ in $(seq 200); do
  URL=$(grep -o -m1 'directory listening on http://[^ ]*' "$WORK/directory.log" | sed 's/^directory listening on //' || true)
  [[ -n $URL ]] && break
  if ! kill -0 "$DIR_PID" 2>/dev/null; then
    echo "run_postman: the directory exited before it was ready; its output:" >&2
    cat "$WORK/directory.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ -z $URL ]]; then
  echo "run_postman: the directory was not ready within 20 s; its output:" >&2
  cat "$WORK/directory.log" >&2
  exit 1
fi
echo "run_postman: directory (pid $DIR_PID) at $URL"

set +e
"$NEWMAN" run "$COLLECTION" --env-var "baseUrl=${URL%/}/api/v1" --color off "$@"
STATUS=$?
set -e
if [[ $STATUS -ne 0 ]]; then
  echo "run_postman: newman failed (exit $STATUS); the directory's output:" >&2
  tail -n 40 "$WORK/directory.log" >&2
fi
exit $STATUS
