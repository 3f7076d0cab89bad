# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# swtpm fixture (docs/testing.md §3.2): one golden state per node identity, made once per
# build directory with a private swtpm_setup config, copied for each test; unix sockets only;
# every swtpm killed by PID.
require swtpm swtpm_setup swtpm_ioctl flock

GOLDEN_DIR="$KKMS_TEST_TMP/golden"

# golden_state NAME [ekcert|plain]: prints the directory of a golden state, making it once.
#   ekcert: RSA-2048 + ECC EK with certificates (swtpm_setup --create-ek-cert)
#   plain:  a manufactured TPM with no EK and no certificate at all
golden_state() {
    local name=$1 kind=${2:-ekcert} d="$GOLDEN_DIR/$1"
    mkdir -p "$GOLDEN_DIR"
    (
        flock 9
        [ -f "$d/ready" ] && exit 0
        rm -rf "$d"
        "$(dirname "${BASH_SOURCE[0]}")/swtpm-manufacture.sh" "$d" "$kind" || exit 1
        touch "$d/ready"
    ) 9>"$GOLDEN_DIR/.lock" || bail "could not make the golden TPM state $name (see above)"
    echo "$d"
}

# swtpm_start GOLDEN_DIR [extra swtpm flags]: starts a private copy; sets TPM_DIR and TPM_SOCK.
swtpm_start() {
    local golden=$1 flags=${2:-not-need-init,startup-clear} i
    TPM_DIR=$(mktemp -d "$T/tpm.XXXXXX")
    cp -a "$golden/state/." "$TPM_DIR/" 2>/dev/null || true
    TPM_SOCK=$TPM_DIR/sock
    swtpm socket --tpm2 --tpmstate dir="$TPM_DIR" --server type=unixio,path="$TPM_SOCK" \
        --ctrl type=unixio,path="$TPM_SOCK.ctrl" --flags "$flags" \
        --log file="$TPM_DIR/swtpm.log",level=1 &
    TPM_PID=$!
    on_exit "swtpm_stop $TPM_PID $TPM_SOCK"
    for i in $(seq 500); do
        [ -S "$TPM_SOCK" ] && [ -S "$TPM_SOCK.ctrl" ] && return 0
        kill -0 "$TPM_PID" 2>/dev/null || bail "swtpm exited at start; see $TPM_DIR/swtpm.log"
        sleep 0.01
    done
    bail "swtpm did not create its sockets within 5 s"
}

# swtpm_stop PID SOCK: graceful shutdown, then SIGKILL after 5 s.
swtpm_stop() {
    local pid=$1 sock=$2 i
    kill -CONT "$pid" 2>/dev/null
    timeout 5 swtpm_ioctl --unix "$sock.ctrl" -s >/dev/null 2>&1 || kill "$pid" 2>/dev/null
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

# tpm2 TOOL ARGS...: runs a tpm2-tools command on the current swtpm, then flushes transients
# (no resource manager on a raw swtpm socket).
tpm2() {
    local tool=$1 rc
    shift
    TPM2TOOLS_TCTI="swtpm:path=$TPM_SOCK" timeout 30 "tpm2_$tool" "$@"
    rc=$?
    TPM2TOOLS_TCTI="swtpm:path=$TPM_SOCK" timeout 30 tpm2_flushcontext -t >/dev/null 2>&1
    return $rc
}
