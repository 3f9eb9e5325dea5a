#!/bin/sh
# `make run`: starts the demo backend on 127.0.0.1:5001 and sluice in front
# of it on 127.0.0.1:8080 (config/examples/demo.yaml), in the foreground.
# Ctrl-C stops both.
set -eu
build="${1:-build}"
backend_pid=""
cleanup() {
  [ -n "$backend_pid" ] && kill "$backend_pid" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$build/tests/support/sluice-backend" --listen 127.0.0.1:5001 >/dev/null &
backend_pid=$!

cat <<MSG
sluice demo: listening on http://127.0.0.1:8080, app backend on 127.0.0.1:5001
  curl -i http://127.0.0.1:8080/app/hello    # proxied to the backend
  curl -i http://127.0.0.1:8080/healthz      # answered by sluice itself
Ctrl-C to stop.
MSG
"$build/cmd/sluice" --config config/examples/demo.yaml
