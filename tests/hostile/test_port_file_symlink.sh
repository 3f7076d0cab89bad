#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Local attack on the files the KMS writes: whoever can write the directory of --port-file plants a
# symlink at the port file's path, or at the temporary name it used to be written through
# (PATH.tmp), pointing at a file of the KMS's user. The victim must stay untouched: the port file
# is written to a new file with an unpredictable name and renamed over the path, so a symlink
# there is replaced itself (README: challenger flags). Also: --audit-log /dev/null gives no
# warning about the log being readable by others (a device is not a file others read).
. "$(dirname "$0")/../lib/common.sh"

printf 'precious\n' >"$T/victim"
chmod 0600 "$T/victim"
victim_intact() { [ "$(cat "$T/victim")" = precious ] && [ "$(stat -c %a "$T/victim")" = 600 ]; }

# start NAME PORT_FILE [ARGS...]: the KMS on 127.0.0.1, any port; waits until PORT_FILE is a
# regular non-empty file. Sets PID.
start() {
    local name=$1 pf=$2 i
    shift 2
    "$KAIROS_KMS" challenger --db "$T/db-$name" --listen 127.0.0.1:0 --port-file "$pf" "$@" 2>"$T/$name.log" &
    PID=$!
    on_exit "stop_pid $PID"
    for i in $(seq 300); do
        [ -f "$pf" ] && [ ! -L "$pf" ] && [ -s "$pf" ] && return 0
        kill -0 "$PID" 2>/dev/null || return 1
        sleep 0.02
    done
    return 1
}
listening_on() { local port; port=$(cat "$1") && [ -n "$port" ] && timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"; }

# ---- a symlink at the old predictable temporary name ----
mkdir "$T/a"
ln -s "$T/victim" "$T/a/kms.port.tmp"
start a "$T/a/kms.port" --audit-log "$T/a-audit.jsonl"
check "the KMS starts and writes the port file" '[ -f "$T/a/kms.port" ] && [ ! -L "$T/a/kms.port" ] && listening_on "$T/a/kms.port"'
check "a symlink at PORT_FILE.tmp pointing at a victim file: the victim is untouched" 'victim_intact'
check "...and the planted symlink is left as it was (never opened, never renamed)" \
    '[ -L "$T/a/kms.port.tmp" ] && [ "$(readlink "$T/a/kms.port.tmp")" = "$T/victim" ]'
check "no temporary file is left next to the port file" \
    '[ "$(ls -A "$T/a" | grep -v -x -e kms.port -e kms.port.tmp | wc -l)" = 0 ]'
stop_pid "$PID"

# ---- a symlink at the port file's path itself ----
mkdir "$T/b"
ln -s "$T/victim" "$T/b/kms.port"
start b "$T/b/kms.port" --audit-log "$T/b-audit.jsonl"
check "a symlink at PORT_FILE pointing at a victim file: the victim is untouched" 'victim_intact'
check "...the symlink itself is replaced by a regular file holding the port" \
    '[ -f "$T/b/kms.port" ] && [ ! -L "$T/b/kms.port" ] && listening_on "$T/b/kms.port"'
check "...readable by all (mode 644), as a port is no secret" '[ "$(stat -c %a "$T/b/kms.port")" = 644 ]'
stop_pid "$PID"

# ---- a dangling symlink at the path: nothing is created where it points ----
mkdir "$T/c"
ln -s "$T/created-by-kms" "$T/c/kms.port"
ln -s "$T/created-by-kms-tmp" "$T/c/kms.port.tmp"
start c "$T/c/kms.port" --audit-log "$T/c-audit.jsonl"
check "dangling symlinks at PORT_FILE and PORT_FILE.tmp: nothing is created at their targets" \
    '[ ! -e "$T/created-by-kms" ] && [ ! -e "$T/created-by-kms-tmp" ] && listening_on "$T/c/kms.port"'
stop_pid "$PID"

# ---- the audit log ----
mkdir "$T/d"
start d "$T/d/kms.port" --audit-log /dev/null
check "--audit-log /dev/null: the KMS starts" 'listening_on "$T/d/kms.port"'
check "...without a warning that the audit log is readable by others" '! grep -q "readable by other" "$T/d.log"'
diag <"$T/d.log"
stop_pid "$PID"
touch "$T/open-audit.jsonl"
chmod 0644 "$T/open-audit.jsonl"
mkdir "$T/e"
start e "$T/e/kms.port" --audit-log "$T/open-audit.jsonl"
check "a regular audit log readable by others still gets the warning" \
    'grep -q "open-audit.jsonl: audit log readable by other users (mode 0644)" "$T/e.log"'
stop_pid "$PID"
ln -s "$T/victim" "$T/audit-link"
mkdir "$T/f"
"$KAIROS_KMS" challenger --db "$T/db-f" --listen 127.0.0.1:0 --port-file "$T/f/kms.port" --audit-log "$T/audit-link" \
    >/dev/null 2>"$T/f.log" &
PID=$!
on_exit "stop_pid $PID"
for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
check "an audit log path that is a symlink is refused (exit 1), the victim untouched" \
    '! kill -0 "$PID" 2>/dev/null && wait "$PID"; [ $? = 1 ] && victim_intact && grep -q "audit-link: cannot open the audit log" "$T/f.log"'

done_testing
