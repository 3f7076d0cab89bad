# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Shared by the shell tests: TAP output, a private temporary directory, cleanup of everything a
# test started (by PID), and a clear failure when a needed tool is missing.
set -u
set -o pipefail

: "${KAIROS_KMS:?KAIROS_KMS must name the kairos-kms binary under test}"
: "${KKMS_TEST_TMP:=/tmp/kkms-test}"
mkdir -p "$KKMS_TEST_TMP"
T=$(mktemp -d "$KKMS_TEST_TMP/t.XXXXXX")
_tap_n=0
_tap_failed=0
_cleanups=()

# Runs cleanups in reverse order; keeps $T when a check failed, so its logs can be read.
_run_cleanups() {
    local i
    for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do eval "${_cleanups[i]}" || true; done
    if [ "$_tap_failed" -eq 0 ]; then rm -rf "$T"; else echo "# kept $T for inspection"; fi
}
trap _run_cleanups EXIT
trap 'exit 130' INT TERM

on_exit() { _cleanups+=("$1"); }

# stop_pid PID [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 10); always reaps.
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    for i in $(seq $((${2:-10} * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

ok() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $*"; }
not_ok() { _tap_n=$((_tap_n + 1)); _tap_failed=$((_tap_failed + 1)); echo "not ok $_tap_n - $*"; }
# check DESCRIPTION COMMAND...: one TAP line for whether COMMAND succeeds.
# check DESCRIPTION EXPRESSION: one TAP line for whether the shell EXPRESSION (eval'd, so
# && and || stay inside the check) succeeds. With pipefail on, never end a pipe in `grep -q`:
# it may exit before the writer is done, which then dies of SIGPIPE; use `grep PAT >/dev/null`.
check() { if eval "$2"; then ok "$1"; else not_ok "$1"; fi; }
diag() { sed 's/^/# /'; }
done_testing() { echo "1..$_tap_n"; [ "$_tap_failed" -eq 0 ]; }
bail() { echo "Bail out! $*"; exit 1; }
# one_line FILE: FILE holds exactly one line (an error said once, in one line).
one_line() { [ "$(wc -l <"$1")" -eq 1 ]; }
# refused_in_one_line DESCRIPTION PATTERN COMMAND...: one TAP line for COMMAND (stdin $T/pass)
# exiting 1 with exactly one line on stderr ($T/err) that matches the grep PATTERN; sets rc.
refused_in_one_line() {
    local what=$1 pattern=$2
    shift 2
    "$@" <"$T/pass" >/dev/null 2>"$T/err"
    rc=$?
    check "$what" '[ "$rc" = 1 ] && one_line "$T/err" && grep -q -- "$pattern" "$T/err"'
}

require() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || bail "$tool is missing: run 'make check' (it installs the test tools) or apt-get install the package that provides it"
    done
}

# wait_port_file FILE PID [SECONDS]: waits (default 6 s) until a server started in the background
# as PID has written its port to FILE; fails when PID exits first or the time runs out.
wait_port_file() {
    local file=$1 pid=$2 i
    for i in $(seq $((${3:-6} * 50))); do
        [ -s "$file" ] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.02
    done
    return 1
}

# run_kkms OUT ERR RC_VAR ARGS...: runs the binary with a hard time limit, captures output.
run_kkms() {
    local out=$1 err=$2 __rc=$3
    shift 3
    timeout -k 5 60 "$KAIROS_KMS" "$@" >"$out" 2>"$err"
    printf -v "$__rc" '%d' $?
}
