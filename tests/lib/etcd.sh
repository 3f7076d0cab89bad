# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# etcd fixture (source tests/lib/common.sh first): a real 3-member etcd cluster (Debian's
# etcd-server binary run directly, never the system service) on 127.0.0.1, with ports the kernel
# hands out at start, data under $T/etcd-http (or -https), fast elections (50 ms heartbeat, 500 ms election) and
# no fsync. Members are tracked by PID; they can be killed and restarted with their data.
#
#   etcd_cluster_start [tls]   starts 3 members (tls: https client URLs with certificates made by
#                              openssl in $T/pki, client certificates required); sets
#                              ETCD_ENDPOINTS (comma list), ETCD_EP[i], ETCD_TLS_OPTS (etcd_tool
#                              options for the client certificate)
#   etcdt ARGS...              etcd_tool with the cluster's endpoints and TLS options, time-limited
#   etcd_leader                prints the index (0-2) of the leader member
#   etcd_kill I / etcd_restart I   SIGKILL member I / start it again with its old data
#   etcd_lose_quorum / etcd_regain_quorum [SECONDS]   SIGSTOP every member but the leader (no
#                              write commits, no linearizable read answers) / SIGCONT them and
#                              wait until healthy
#   etcd_wait_healthy [SECONDS]    waits until every running member reports the same leader
#   etcd_enable_auth USER PASSWORD PREFIX   users root and USER (READWRITE on PREFIX), auth on
: "${ETCD_TOOL:?set ETCD_TOOL to the etcd_tool binary}"
require etcd openssl python3

ETCD_N=3
ETCD_PIDS=()
ETCD_CP=()
ETCD_PP=()
ETCD_EP=()
ETCD_TLS_OPTS=()
ETCD_SCHEME=http
ETCD_TLS=""

# Free ports for every member's client and peer URL, chosen by the kernel (bound, then released).
_etcd_ports() {
    python3 -c 'import socket
ss=[socket.socket() for _ in range(6)]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'
}

_etcd_pki() {
    local d=$T/pki
    mkdir -p "$d"
    _mk() { openssl "$@" >>"$d/openssl.log" 2>&1 || bail "openssl $1 failed: $(tail -n 3 "$d/openssl.log")"; }
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    _mk req -x509 "${ec[@]}" -keyout "$d/ca.key" -out "$d/ca.pem" -days 2 -subj /CN=kkms-etcd-test-ca
    _mk req "${ec[@]}" -keyout "$d/server.key" -out "$d/server.csr" -subj /CN=localhost
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$d/server.ext"
    _mk x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -out "$d/server.pem" \
        -days 2 -extfile "$d/server.ext"
    # A client certificate without a Common Name: etcd's gateway refuses requests whose verified
    # client certificate has a CN while auth is on (etcd-io/etcd v3.4 embed/serve.go).
    _mk req "${ec[@]}" -keyout "$d/client.key" -out "$d/client.csr" -subj /O=kairos-kms-test
    printf 'extendedKeyUsage=clientAuth\n' >"$d/client.ext"
    _mk x509 -req -in "$d/client.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -out "$d/client.pem" \
        -days 2 -extfile "$d/client.ext"
    # An unrelated CA and a client certificate it signed: refused by the cluster.
    _mk req -x509 "${ec[@]}" -keyout "$d/other-ca.key" -out "$d/other-ca.pem" -days 2 -subj /CN=other-ca
    _mk req "${ec[@]}" -keyout "$d/other.key" -out "$d/other.csr" -subj /O=other
    _mk x509 -req -in "$d/other.csr" -CA "$d/other-ca.pem" -CAkey "$d/other-ca.key" -CAcreateserial \
        -out "$d/other.pem" -days 2 -extfile "$d/client.ext"
}

# etcd_member_start I new|existing
etcd_member_start() {
    local i=$1 state=$2 cluster="" j tls=()
    for ((j = 0; j < ETCD_N; j++)); do cluster+="${cluster:+,}n$j=http://127.0.0.1:${ETCD_PP[j]}"; done
    if [ -n "$ETCD_TLS" ]; then
        tls=(--cert-file "$T/pki/server.pem" --key-file "$T/pki/server.key" --client-cert-auth
             --trusted-ca-file "$T/pki/ca.pem")
    fi
    mkdir -p "$ETCD_DIR"
    etcd --name "n$i" --data-dir "$ETCD_DIR/n$i" \
        --listen-client-urls "${ETCD_EP[i]}" --advertise-client-urls "${ETCD_EP[i]}" \
        --listen-peer-urls "http://127.0.0.1:${ETCD_PP[i]}" --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PP[i]}" \
        --initial-cluster "$cluster" --initial-cluster-state "$state" --initial-cluster-token "$ETCD_TOKEN" \
        --heartbeat-interval 50 --election-timeout 500 --unsafe-no-fsync --logger zap "${tls[@]}" \
        >>"$ETCD_DIR/n$i.log" 2>&1 &
    ETCD_PIDS[i]=$!
}

etcd_cluster_start() {
    local ports i
    ETCD_AUTH_OPTS=()
    [ "${1:-}" = tls ] && { ETCD_TLS=1; ETCD_SCHEME=https; _etcd_pki; }
    ETCD_TOKEN="kkms-test-$$-$RANDOM"
    ETCD_DIR=$T/etcd-$ETCD_SCHEME
    read -r -a ports <<<"$(_etcd_ports)"
    [ "${#ports[@]}" = 6 ] || bail "could not find free ports"
    ETCD_ENDPOINTS=""
    for ((i = 0; i < ETCD_N; i++)); do
        ETCD_CP[i]=${ports[i]}
        ETCD_PP[i]=${ports[i + 3]}
        ETCD_EP[i]="$ETCD_SCHEME://127.0.0.1:${ETCD_CP[i]}"
        ETCD_ENDPOINTS+="${ETCD_ENDPOINTS:+,}${ETCD_EP[i]}"
    done
    [ -n "$ETCD_TLS" ] && ETCD_TLS_OPTS=(--ca "$T/pki/ca.pem" --cert "$T/pki/client.pem" --key "$T/pki/client.key")
    for ((i = 0; i < ETCD_N; i++)); do etcd_member_start "$i" new; done
    on_exit etcd_cluster_stop
    etcd_wait_healthy 20 || { tail -n 5 "$ETCD_DIR"/n*.log | diag; bail "the etcd cluster did not elect a leader within 20 s"; }
}

etcd_cluster_stop() {
    local i
    for i in "${!ETCD_PIDS[@]}"; do [ -n "${ETCD_PIDS[i]}" ] && stop_pid "${ETCD_PIDS[i]}" 5; done
    ETCD_PIDS=()
}

etcdt() {
    timeout -k 5 60 "$ETCD_TOOL" --endpoints "$ETCD_ENDPOINTS" "${ETCD_TLS_OPTS[@]}" "$@"
}

# etcdt_ep I ARGS...: etcd_tool on member I alone.
etcdt_ep() {
    local i=$1
    shift
    timeout -k 5 60 "$ETCD_TOOL" --endpoints "${ETCD_EP[i]}" "${ETCD_TLS_OPTS[@]}" --deadline 2000 "$@"
}

# The status lines of every member (ETCD_AUTH_OPTS: etcd_tool options once auth is enabled) ("I member=M leader=L ..." or "I down"), with any auth options.
etcd_status() {
    timeout -k 5 30 "$ETCD_TOOL" --endpoints "$ETCD_ENDPOINTS" "${ETCD_TLS_OPTS[@]}" "${ETCD_AUTH_OPTS[@]}" \
        --attempt 1000 status 2>/dev/null
}

etcd_leader() {
    etcd_status | awk '{ m = ""; l = ""; for (i = 2; i <= NF; i++) { if ($i ~ /^member=/) m = substr($i, 8);
        if ($i ~ /^leader=/) l = substr($i, 8) } if (m != "" && m == l && m != "0") { print $1; exit } }'
}

# etcd_wait_healthy [SECONDS]: every running member up and agreeing on one leader.
etcd_wait_healthy() {
    local until=$((SECONDS + ${1:-15})) out up leaders
    while [ "$SECONDS" -lt "$until" ]; do
        out=$(etcd_status)
        up=$(grep -c member= <<<"$out")
        leaders=$(grep -o 'leader=[0-9]*' <<<"$out" | sort -u)
        if [ "$up" -ge "$(etcd_running)" ] && [ "$(wc -l <<<"$leaders")" = 1 ] && [ "$leaders" != leader=0 ] &&
            [ -n "$leaders" ]; then
            return 0
        fi
        sleep 0.3
    done
    return 1
}

etcd_running() {
    local i n=0
    for i in "${!ETCD_PIDS[@]}"; do [ -n "${ETCD_PIDS[i]}" ] && kill -0 "${ETCD_PIDS[i]}" 2>/dev/null && n=$((n + 1)); done
    echo "$n"
}

etcd_kill() {
    local i=$1
    kill -KILL "${ETCD_PIDS[i]}" 2>/dev/null
    wait "${ETCD_PIDS[i]}" 2>/dev/null
    ETCD_PIDS[i]=""
}

etcd_restart() {
    etcd_member_start "$1" existing
}

ETCD_STOPPED=()
etcd_lose_quorum() {
    local leader i
    leader=$(etcd_leader)
    ETCD_STOPPED=()
    for i in 0 1 2; do [ "$i" != "$leader" ] && ETCD_STOPPED+=("$i"); done
    for i in "${ETCD_STOPPED[@]}"; do kill -STOP "${ETCD_PIDS[i]}"; done
    on_exit "for p in ${ETCD_PIDS[*]}; do kill -CONT \$p 2>/dev/null; done"
    diag <<<"stopped etcd members ${ETCD_STOPPED[*]} (the leader ${leader:-?} runs alone: no quorum)"
}

etcd_regain_quorum() {
    local i
    for i in "${ETCD_STOPPED[@]}"; do kill -CONT "${ETCD_PIDS[i]}"; done
    etcd_wait_healthy "${1:-30}"
}

ETCD_AUTH_OPTS=()

# etcd_enable_auth USER PASSWORD PREFIX: a root user (password in $T/etcd-root.pw), USER with a
# role granting READWRITE on PREFIX only, then auth on. Sets ETCD_AUTH_OPTS (root's etcd_tool
# options) for the fixture's own status calls.
etcd_enable_auth() {
    local user=$1 pw=$2 prefix=$3 end
    printf 'rootpw-%s\n' "$RANDOM$RANDOM" >"$T/etcd-root.pw"
    end=$(python3 -c 'import sys, base64
p = sys.argv[1].encode()
e = bytearray(p)
while e and e[-1] == 0xff: e.pop()
e = bytes(e[:-1]) + bytes([e[-1] + 1]) if e else b"\0"
print(base64.b64encode(e).decode())' "$prefix")
    {
        etcdt raw auth/user/add "{\"name\":\"root\",\"password\":\"$(head -n 1 "$T/etcd-root.pw")\"}" &&
            etcdt raw auth/role/add '{"name":"root"}' &&
            etcdt raw auth/user/grant '{"user":"root","role":"root"}' &&
            etcdt raw auth/user/add "{\"name\":\"$user\",\"password\":\"$pw\"}" &&
            etcdt raw auth/role/add "{\"name\":\"$user-rw\"}" &&
            etcdt raw auth/role/grant "{\"name\":\"$user-rw\",\"perm\":{\"permType\":\"READWRITE\",\"key\":\"$(printf %s "$prefix" | base64 -w0)\",\"range_end\":\"$end\"}}" &&
            etcdt raw auth/user/grant "{\"user\":\"$user\",\"role\":\"$user-rw\"}" &&
            etcdt raw auth/enable '{}'
    } >"$ETCD_DIR/auth-setup.log" 2>&1 || { diag <"$ETCD_DIR/auth-setup.log"; bail "could not enable etcd authentication"; }
    ETCD_AUTH_OPTS=(--user root --password-file "$T/etcd-root.pw")
}

# challenger_start NAME [ARGS...]: a challenger over the cluster, its store flags from the array
# CHALLENGER_STORE (default: --etcd $ETCD_ENDPOINTS), its port, audit log and log in $T; sets
# PID_NAME and URL_NAME.
challenger_start() {
    local name=$1 pid
    shift
    local store=(--etcd "$ETCD_ENDPOINTS")
    [ -n "${CHALLENGER_STORE+x}" ] && store=("${CHALLENGER_STORE[@]}")
    rm -f "$T/$name.port"
    "$KAIROS_KMS" challenger "${store[@]}" --listen 127.0.0.1:0 --port-file "$T/$name.port" \
        --audit-log "$T/audit-$name.jsonl" --instance "$name" "$@" 2>>"$T/kms-$name.log" &
    pid=$!
    on_exit "stop_pid $pid"
    wait_port_file "$T/$name.port" "$pid" 20 || bail "challenger $name did not listen: $(tail -3 "$T/kms-$name.log")"
    printf -v "PID_$name" %s "$pid"
    printf -v "URL_$name" %s "http://127.0.0.1:$(cat "$T/$name.port")"
}

# ready URL: /readyz answers 200 now (within 2 s).
ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1/readyz")" = 200 ]; }
# wait_ready URL [SECONDS]: /readyz answers 200 within SECONDS (default 20).
wait_ready() {
    local i
    for i in $(seq $((${2:-20} * 5))); do
        ready "$1" && return 0
        sleep 0.2
    done
    return 1
}

# check_posts_stored GEN N A B [ETCDT_OPTS...]: after N nodes posted their generated keys through
# the challengers A and B (kms-loadgen --acked-file $T/acked-A and $T/acked-B), etcd holds exactly
# one Secret per node under GEN, every acknowledged post is among them, and every node reads its
# ciphertext back through A and through B. Three TAP lines; uses the test's lg, json and SEED.
check_posts_stored() {
    local gen=$1 n=$2 a=$3 b=$4 v lost=0 url_a url_b
    shift 4
    url_a=URL_$a url_b=URL_$b
    etcdt "$@" list "${gen}secrets/" >"$T/gen-secrets" 2>"$T/gen-secrets.err"
    check "etcd holds exactly one Secret per node ($n), none twice" \
        '[ "$(grep -c "^${gen}secrets/" "$T/gen-secrets")" = "$n" ] &&
         [ "$(grep "^${gen}secrets/" "$T/gen-secrets" | awk "{print \$1}" | sort | uniq -d | wc -l)" = 0 ]'
    for v in $(sort -u "$T/acked-$a" "$T/acked-$b"); do
        grep -q "^${gen}secrets/$v-" "$T/gen-secrets" || lost=$((lost + 1))
    done
    check "every acknowledged post is stored ($(sort -u "$T/acked-$a" "$T/acked-$b" | wc -l) acknowledged, $lost lost)" \
        '[ "$lost" = 0 ] && [ "$(cat "$T/acked-$a" "$T/acked-$b" | wc -l)" -gt 0 ]'
    lg run --url "${!url_a}" --nodes "$n" --seed "$SEED" --mode readback --concurrency 16 --exchanges "$n" \
        --timeout 120 >"$T/read$a.json" 2>"$T/read$a.err"
    lg run --url "${!url_b}" --nodes "$n" --seed "$SEED" --mode readback --concurrency 16 --exchanges "$n" \
        --timeout 120 >"$T/read$b.json" 2>"$T/read$b.err"
    check "every node reads its ciphertext back through $a and through $b" \
        '[ "$(json "$T/read$a.json" ok)" = "$n" ] && [ "$(json "$T/read$b.json" ok)" = "$n" ]'
}

# posts_start N A B: N nodes post their generated keys through the challengers A and B at once
# (kms-loadgen --mode postpass --shared-store, 16 in flight through each; the acknowledged posts
# in $T/acked-A and $T/acked-B), in the background until posts_ok.
posts_start() {
    local n=$1 c url
    shift
    POSTS=()
    for c in "$@"; do
        url=URL_$c
        lg run --url "${!url}" --nodes "$n" --seed "$SEED" --mode postpass --shared-store --concurrency 16 \
            --exchanges "$n" --acked-file "$T/acked-$c" --timeout 300 >"$T/post$c.json" 2>"$T/post$c.err" &
        POSTS+=("$!")
        on_exit "stop_pid $!"
    done
}

# posts_ok A B: the loads of posts_start ended, each with exit 0 and 0 failed (summaries shown).
posts_ok() {
    local c i=0 bad=0
    for c in "$@"; do
        wait "${POSTS[$i]}" || bad=1
        diag <"$T/post$c.json"
        [ "$(json "$T/post$c.json" failed)" = 0 ] || bad=1
        i=$((i + 1))
    done
    [ "$bad" = 0 ]
}
