#!/usr/bin/env bash
# Stop the cluster started by start-ceph.sh and delete its state dir.
# Adapted from the team's shared test-infrastructure script (s3/stop-ceph.sh);
# unchanged but for these comments.
# Usage: ./stop-ceph.sh STATE_DIR   (or S3_STATE_DIR in the environment)
#        KEEP_STATE=1 keeps the directory (logs) for inspection.
# Only the PIDs recorded in STATE_DIR/pids are signalled, and only while
# /proc/PID/cmdline still names the binary that was started there.
set -uo pipefail
DIR=${1:-${S3_STATE_DIR:-}}
[ -n "$DIR" ] && [ -f "$DIR/pids" ] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
DIR=$(cd "$DIR" && pwd)

alive() { # pid: running (not gone, not a zombie) and still ours
  local pid=$1 st
  st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$DIR/ceph.conf"
}

mapfile -t pids < <(tac "$DIR/pids" | awk '{print $1}')
# rgw, osd and mon hold no state worth a clean shutdown: TERM, then KILL after 1 s
for pid in "${pids[@]}"; do alive "$pid" && kill -TERM "$pid" 2>/dev/null; done
for _ in $(seq 1 20); do
  left=0
  for pid in "${pids[@]}"; do alive "$pid" && left=1; done
  [ $left = 0 ] && break
  sleep 0.05
done
for pid in "${pids[@]}"; do alive "$pid" && kill -KILL "$pid" 2>/dev/null; done
: > "$DIR/pids"
if [ "${KEEP_STATE:-0}" != 1 ]; then
  case "$DIR" in /|/tmp|/tmp/) echo "refusing to delete $DIR" >&2; exit 1;; esac
  rm -rf "$DIR"
fi
exit 0
