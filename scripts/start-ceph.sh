#!/usr/bin/env bash
# Start a throwaway single-node Ceph cluster (1 mon + 1 osd + radosgw/beast)
# from nothing, bound to 127.0.0.1 only, without systemd: the real S3 server
# the S3 storage driver's tests run against (test/support/ceph-s3.ts runs it).
#
# Adapted from the team's shared test-infrastructure script (s3/start-ceph.sh,
# "A real S3 server for tests: Ceph RADOS Gateway from Debian"), copied here so
# that the project's tests do not depend on anything outside the repository.
# Changes: S3_WATCH_PID (a watchdog that stops the cluster when the process
# that started it dies without stopping it).
#
# Needs (Debian 12): apt-get install -y --no-install-recommends \
#                      ceph-mon ceph-osd radosgw ceph-common
#
# Usage:  eval "$(./start-ceph.sh)"   # prints "export S3_ENDPOINT=..." lines on stdout;
#         the same KEY=VALUE lines (without export) are kept in $S3_STATE_DIR/env
# Env:    S3_STATE_DIR   state dir to create (default: mktemp -d /tmp/ceph-s3.XXXXXX)
#         S3_PORT        RGW port (default: a free port picked by the kernel)
#         CEPH_OSD_BACKEND  memstore (default, RAM only) | bluestore (file-backed)
#         CEPH_OSD_SIZE_GB  capacity of the OSD (default 4)
#         S3_ACCESS_KEY / S3_SECRET_KEY (defaults below)
#         S3_START_TIMEOUT  seconds to wait for each step (default 120)
#         S3_WATCH_PID   stop the cluster (stop-ceph.sh) once this process is gone
#         RGW_FRONTEND_OPTS extra beast options, e.g. "tcp_nodelay=1" (default none: beast then
#                           leaves Nagle on, and with the client's delayed ACK every response that
#                           has a body takes ~40 ms more on loopback; HEAD and PUT answers do not)
# Stop:   ./stop-ceph.sh "$S3_STATE_DIR"
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
log() { echo "[start-ceph] $*" >&2; }
DIR=
fail() { # message: show log tails, stop whatever was started, exit 1
  trap - ERR
  log "ERROR: $*"
  if [ -n "$DIR" ] && [ -f "$DIR/pids" ]; then
    tail -n 20 "$DIR"/log/*.log "$DIR"/log/*.stdout >&2 2>/dev/null || true
    KEEP_STATE=${KEEP_STATE:-0} "$HERE/stop-ceph.sh" "$DIR" >&2 || true
  fi
  exit 1
}

for b in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool ceph-authtool; do
  command -v "$b" >/dev/null || fail "missing $b (apt-get install ceph-mon ceph-osd radosgw ceph-common)"
done

T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
TIMEOUT=${S3_START_TIMEOUT:-120}
BACKEND=${CEPH_OSD_BACKEND:-memstore}
SIZE_GB=${CEPH_OSD_SIZE_GB:-4}
ACCESS_KEY=${S3_ACCESS_KEY:-AKIACEPHTEST0000001}
SECRET_KEY=${S3_SECRET_KEY:-cephtestsecretkey0000000000000000000001}

DIR=${S3_STATE_DIR:-$(mktemp -d /tmp/ceph-s3.XXXXXX)}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
[ -e "$DIR/ceph.conf" ] && { log "ERROR: $DIR already holds a cluster"; exit 1; }
mkdir -p "$DIR"/{run,log,crash,mon.a,osd.0,rgw}
: > "$DIR/pids"

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
MON_PORT=$(free_port)
RGW_PORT=${S3_PORT:-$(free_port)}
FSID=$(cat /proc/sys/kernel/random/uuid)
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
CONF="$DIR/ceph.conf"

cat > "$CONF" <<EOF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$MON_PORT
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
ms bind msgr1 = false
ms bind msgr2 = true
auth cluster required = none
auth service required = none
auth client required = none
# auth none cannot do msgr2 'secure' mode; daemons default to secure for mons
ms cluster mode = crc
ms service mode = crc
ms client mode = crc
ms mon cluster mode = crc
ms mon service mode = crc
ms mon client mode = crc
keyring = $DIR/keyring
run dir = $DIR/run
crash dir = $DIR/crash
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
log to stderr = false
err to stderr = true
pid file = $DIR/run/\$name.pid
# single node, single replica
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
mon allow pool delete = true
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
# do not refuse to run on a busy CI disk
mon data avail warn = 1
mon data avail crit = 0
mon osd full ratio = .99
mon osd nearfull ratio = .99
mon osd backfillfull ratio = .99
osd failsafe full ratio = .99
[mon]
# commit map changes quickly (each pool create otherwise costs ~1 s)
paxos propose interval = 0.05
paxos min wait = 0.01
mon data = $DIR/mon.\$id
mon cluster log file = $DIR/log/cluster.log
[osd]
osd data = $DIR/osd.\$id
osd objectstore = $BACKEND
memstore device bytes = $((SIZE_GB * 1024 * 1024 * 1024))
bluestore block path = $DIR/osd.\$id/block.file
bluestore block create = true
bluestore block size = $((SIZE_GB * 1024 * 1024 * 1024))
bluestore block db create = false
bluestore block wal create = false
bluestore fsck on mkfs = false
bluestore fsck on mount = false
osd memory target = 939524096
bluestore cache autotune = false
bluestore cache size = 134217728
osd max object name len = 460
osd max object namespace len = 64
osd op num threads per shard = 1
osd op num shards = 2
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT${RGW_FRONTEND_OPTS:+ $RGW_FRONTEND_OPTS}
rgw data = $DIR/rgw
rgw thread pool size = 64
# reclaim deleted/overwritten data within a minute, not hours (memstore keeps it in RAM)
rgw gc obj min wait = 30
rgw gc processor period = 30
rgw enable usage log = false
EOF

start_daemon() { # name cmd...
  local name=$1; shift
  setsid "$@" -f -c "$CONF" </dev/null >>"$DIR/log/$name.stdout" 2>&1 &
  echo "$! $name" >> "$DIR/pids"
}

daemons_alive() {
  local pid name
  while read -r pid name; do
    kill -0 "$pid" 2>/dev/null || { log "$name (pid $pid) exited"; return 1; }
  done < "$DIR/pids"
}

wait_for() { # description command...
  local what=$1; shift
  local deadline=$(( $(date +%s) + TIMEOUT ))
  until "$@" >/dev/null 2>&1; do
    daemons_alive || fail "a daemon died while waiting for $what"
    [ "$(date +%s)" -lt "$deadline" ] || fail "timeout waiting for $what"
    sleep 0.2
  done
}

trap 'fail "command failed at line $LINENO"' ERR

CEPH=(ceph -c "$CONF" --connect-timeout 30)

# --- monitor -----------------------------------------------------------------
ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$DIR/keyring" --gen-key -n client.admin --cap mon 'allow *' \
  --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$DIR/monmap" >/dev/null
ceph-mon --mkfs -i a -c "$CONF" --monmap "$DIR/monmap" --keyring "$DIR/keyring" \
  >"$DIR/log/mon-mkfs.log" 2>&1
start_daemon mon.a ceph-mon -i a
wait_for "monitor" "${CEPH[@]}" mon stat
log "mon up after $(elapsed) s"

# --- osd -----------------------------------------------------------------------
OSD_ID=$("${CEPH[@]}" osd new "$OSD_UUID")
[ "$OSD_ID" = 0 ] || fail "unexpected osd id $OSD_ID"
ceph-osd -i 0 -c "$CONF" --mkfs --osd-uuid "$OSD_UUID" >"$DIR/log/osd-mkfs.log" 2>&1
start_daemon osd.0 ceph-osd -i 0
osd_up() { "${CEPH[@]}" osd dump 2>/dev/null | grep -q '^osd\.0 up'; }
wait_for "osd" osd_up
log "osd up after $(elapsed) s"

# --- pools ---------------------------------------------------------------------
# Create every pool rgw would otherwise create lazily (at startup, at the first
# bucket, the first object and the first multipart upload), in one client.
/usr/bin/python3 - "$CONF" <<'PY'
import json, sys, rados
c = rados.Rados(conffile=sys.argv[1], name="client.admin")
c.connect(timeout=30)
pools = [".rgw.root", "default.rgw.log", "default.rgw.control", "default.rgw.meta",
         "default.rgw.buckets.index", "default.rgw.buckets.data",
         "default.rgw.buckets.non-ec"]
for p in pools:
    for cmd in ({"prefix": "osd pool create", "pool": p, "pg_num": 8, "pgp_num": 8},
                {"prefix": "osd pool application enable", "pool": p, "app": "rgw"}):
        ret, out, err = c.mon_command(json.dumps(cmd), b"", timeout=30)
        if ret != 0:
            sys.exit("%s: %s" % (cmd, err))
c.shutdown()
PY
log "pools created after $(elapsed) s"

# --- radosgw -------------------------------------------------------------------
start_daemon rgw radosgw -n client.rgw
rgw_up() { # anonymous ListBuckets answers 200 once the frontend is up
  if command -v curl >/dev/null; then curl -fsS -o /dev/null "http://127.0.0.1:$RGW_PORT/"
  else /usr/bin/python3 -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "http://127.0.0.1:$RGW_PORT/"; fi
}
wait_for "radosgw" rgw_up
log "rgw up after $(elapsed) s"

radosgw-admin -c "$CONF" user create --uid=test --display-name="Test User" \
  --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >"$DIR/log/user-create.json" 2>>"$DIR/log/radosgw-admin.stdout"

if [ -n "${S3_WATCH_PID:-}" ]; then
  # The watchdog's command line names $CONF, so stop-ceph.sh recognises it as ours and stops it
  # first; when the watched process dies, it becomes stop-ceph.sh itself (exec).
  setsid bash -c 'while kill -0 "$2" 2>/dev/null; do sleep 1; done; exec "$3" "$4"' \
    ceph-watchdog "$CONF" "$S3_WATCH_PID" "$HERE/stop-ceph.sh" "$DIR" </dev/null >>"$DIR/log/watchdog.stdout" 2>&1 &
  echo "$! watchdog" >> "$DIR/pids"
fi

trap - ERR
log "ready after $(elapsed) s (state in $DIR)"

cat > "$DIR/env" <<EOF
S3_ENDPOINT=http://127.0.0.1:$RGW_PORT
S3_REGION=us-east-1
S3_ACCESS_KEY=$ACCESS_KEY
S3_SECRET_KEY=$SECRET_KEY
S3_FORCE_PATH_STYLE=true
S3_STATE_DIR=$DIR
EOF
sed "s/^/export /" "$DIR/env"
