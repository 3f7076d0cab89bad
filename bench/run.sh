#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# run.sh BINARY: the benchmarks of `make bench`, in one run; numbers only, nothing is asserted.
#  1. hyperfine: start-up of the static binary; tpm-hash against a swtpm with an EK certificate
#     and one without (CreatePrimary); one node's whole G1 and G3 exchange (discovery-challenger
#     with a swtpm) against a local KMS.
#  2. the floor: the RSA-2048 public-key operations the KMS cannot avoid per exchange (2 for G1,
#     3 for G3), timed with the mbedTLS it is built with (kms-loadgen floor).
#  3. the KMS's CPU (user + system, /proc/PID/schedstat of a one-process `challenger --db`, read
#     right before and after the exchanges by bench/kms_cpu.sh) per exchange, G1 and G3, over plain HTTP, over TLS with a full handshake per exchange, and over
#     TLS with resumed sessions when the build can resume them (else "n/a"); plain HTTP also with
#     cold caches (1024 nodes in turn: every EK and AK is new to the KMS's RSA key cache).
#     Before those, in step 1: the KMS's CPU per exchange of a real node (discovery-challenger with
#     a swtpm, 20 in turn), and per /healthz connection on the same idle KMS (the machine's floor).
#     The same G1 exchanges against `challenger --etcd` over a 3-member etcd cluster on 127.0.0.1
#     (bench/etcd.sh), the same 64 nodes moved there by `challenger import`.
#  4. tang's CPU per /rec: Debian's tangd, one process per connection as its socket activation
#     runs it (here socat ... fork EXEC:tangd), asked by `clevis decrypt`; CPU of every tangd and
#     its per-connection relay process (socat's reaped children). The ratio KMS/tang.
#  5. kms-loadgen at 1, 64 and 1024 exchanges in flight, G1 and G3 (bench/loadgen.sh).
#  6. the KMS's memory (VmRSS, VmHWM) with 10, 10,000 and 100,000 registered nodes, one file each,
#     and with the 10,000 nodes imported into the etcd cluster (then stopped, by PID).
# Without etcd (Debian's etcd-server) the etcd measurements print a line saying so and are "n/a".
# Ends with a summary in Markdown (README.md "Benchmarks"). Every step is bounded in time; the
# whole takes 5-15 minutes on 2 CPUs (the first run also generates the 1024 nodes' keys).
set -uo pipefail
bin=$(readlink -f "$1")
here=$(cd "$(dirname "$0")" && pwd)
lg=$(dirname "$bin")/bench/kms-loadgen
seed=${LOADGEN_SEED:-kairos-kms-loadgen-test}
work=$(mktemp -d /tmp/kairos-kms-bench.XXXXXX)
pids=()
. "$here/etcd.sh"
. "$here/kms.sh"
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    bench_etcd_stop
    rm -rf "$work"
}
trap cleanup EXIT
hz=$(getconf CLK_TCK)
declare -A R # results for the summary
section() { printf '\n== %s\n' "$*"; }
# json KEY: KEY of the JSON object on stdin.
json() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1" 2>/dev/null || echo "?"; }
# sched_ns PID: the CPU time (user + system) PID has run, in ns (/proc/PID/schedstat, exact).
sched_ns() { read -r ns _ <"/proc/$1/schedstat" && echo "$ns"; }
child_ticks() { awk '{print $16 + $17}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

[ -x "$lg" ] || { echo "run.sh: $lg is missing (build it: ninja -C $(dirname "$bin"))" >&2; exit 1; }

section "machine"
echo "CPUs: $(nproc); $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
R[machine]="$(nproc) CPUs, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
R[load_start]=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- 1. single commands ----
section "single commands (hyperfine)"
start_swtpm() { # DIR KIND
    "$here/../tests/lib/swtpm-manufacture.sh" "$1" "$2"
    swtpm socket --tpm2 --tpmstate dir="$1/state" --server type=unixio,path="$1/sock" \
        --ctrl type=unixio,path="$1/sock.ctrl" --flags not-need-init,startup-clear 2>/dev/null &
    pids+=($!)
    for _ in $(seq 500); do [ -S "$1/sock" ] && return; sleep 0.01; done
}
start_swtpm "$work/plain" plain
start_swtpm "$work/ek" ekcert
printf %s 'bench-static-passphrase' >"$work/pass"
"$bin" challenger register --db "$work/db1" --tpm-hash "$("$bin" tpm-hash --tpm-device "$work/ek/sock")" \
    --label COS_PERSISTENT --passphrase-file "$work/pass" 2>/dev/null
kms_start "$work/port1" /dev/null 6 --db "$work/db1" --audit-log /dev/null --workers 1
pids+=($kms)
url1=$url
timeout 300 hyperfine --warmup 3 --runs 30 -N --export-json "$work/hf1.json" "$bin --list" \
    "$bin tpm-hash --tpm-device $work/ek/sock" "$bin tpm-hash --tpm-device $work/plain/sock" ||
    echo "hyperfine failed or took over 5 min"
# A node's exchange makes an AK in the swtpm (an RSA key generation: 0.1 to 3 s): fewer runs.
timeout 300 hyperfine --warmup 1 --runs 10 -N --export-json "$work/hf2.json" \
    "$bin discovery-challenger --tpm-device $work/ek/sock get --partition-label COS_PERSISTENT --challenger-server $url1 --protocol g1" \
    "$bin discovery-challenger --tpm-device $work/ek/sock get --partition-label COS_PERSISTENT --challenger-server $url1 --protocol g3" ||
    echo "hyperfine failed or took over 5 min"
python3 -c 'import json,sys
r = []
for f in sys.argv[1:]:
    try: r += json.load(open(f))["results"]
    except Exception: pass
json.dump({"results": r}, open(sys.argv[1].replace("hf1", "hf"), "w"))' "$work/hf1.json" "$work/hf2.json"
if [ -s "$work/hf.json" ]; then
    mapfile -t hf < <(python3 -c 'import json,sys
for r in json.load(open(sys.argv[1]))["results"]: print("%.1f ± %.1f ms" % (r["mean"]*1e3, r["stddev"]*1e3))' "$work/hf.json")
    R[hf_list]=${hf[0]:-?} R[hf_hash_ek]=${hf[1]:-?} R[hf_hash_plain]=${hf[2]:-?} R[hf_g1]=${hf[3]:-?} R[hf_g3]=${hf[4]:-?}
fi

# The issue's own measurement: a KMS's CPU (schedstat) per exchange of a real node (a
# discovery-challenger process with a swtpm, one after another). Between the messages of an
# exchange the node's TPM works for milliseconds: the KMS sleeps and wakes about four times per
# exchange with cold caches. The per-connection floor of this machine beside it: one /healthz
# per connection (curl), 50 ms apart, on the same idle KMS. A KMS of its own per protocol (a G3
# exchange pins the node's PCRs in its SealedVolume, which G1 then refuses).
real_cpu() { # PROTO N -> ms of KMS CPU per exchange, or "?" when one failed; R[healthz] with g1
    local proto=$1 n=$2 ok=0 t0 t1 kms url
    "$bin" challenger register --db "$work/real-$proto" --tpm-hash "$("$bin" tpm-hash --tpm-device "$work/ek/sock")" \
        --label COS_PERSISTENT --passphrase-file "$work/pass" 2>/dev/null
    kms_start "$work/port-$proto" /dev/null 6 --db "$work/real-$proto" --audit-log /dev/null --workers 1
    pids+=($kms)
    get() {
        timeout 60 "$bin" discovery-challenger --tpm-device "$work/ek/sock" get --partition-label COS_PERSISTENT \
            --challenger-server "$url" --protocol "$proto" --timeout 30 >/dev/null 2>&1
    }
    get # the first one learns the node (G3: enrolls its attestation)
    t0=$(sched_ns "$kms")
    for _ in $(seq "$n"); do get && ok=$((ok + 1)); done
    t1=$(sched_ns "$kms")
    if [ "$ok" = "$n" ]; then awk -v d=$((t1 - t0)) -v n="$n" 'BEGIN { printf "%.2f", d / n / 1e6 }'; else echo "?"; fi
    if [ "$proto" = g1 ]; then
        ok=0 t0=$(sched_ns "$kms")
        for _ in $(seq 50); do
            [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url/healthz")" = 200 ] && ok=$((ok + 1))
            sleep 0.05
        done
        t1=$(sched_ns "$kms")
        awk -v d=$((t1 - t0)) -v ok="$ok" 'BEGIN { if (ok == 50) printf "%.2f", d / 50 / 1e6; else print "?" }' \
            >"$work/healthz"
    fi
    kill "$kms" 2>/dev/null
    wait "$kms" 2>/dev/null
}
R[real_g1]=$(real_cpu g1 20) R[real_g3]=$(real_cpu g3 20) R[healthz]=$(cat "$work/healthz" 2>/dev/null || echo "?")
echo "KMS CPU per exchange of a swtpm node (discovery-challenger, 20 in turn): G1 ${R[real_g1]} ms, G3 ${R[real_g3]} ms;" \
    "one /healthz per connection, 50 ms apart: ${R[healthz]} ms"

# ---- 2. the floor ----
section "the floor: RSA-2048 public-key operations of one exchange (mbedTLS, one thread)"
floor=$(timeout 1500 "$lg" floor --seed "$seed" --exchanges 2000 2>"$work/floor.log" | tail -1)
echo "${floor:-kms-loadgen floor failed: $(tail -1 "$work/floor.log")}"
R[floor_g1]=$(json g1_floor_us <<<"$floor") R[floor_g3]=$(json g3_floor_us <<<"$floor")
R[verify]=$(json rsa2048_pkcs1_verify_us <<<"$floor") R[oaep]=$(json rsa2048_oaep_encrypt_us <<<"$floor")
R[attest_g1]=$(json g1_attest_us <<<"$floor") R[attest_g3]=$(json g3_attest_us <<<"$floor")

# ---- 3. KMS CPU per exchange ----
section "KMS CPU per exchange (one process, 64 nodes, 8 in flight)"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/srv.key" -out "$work/srv.pem" -days 2 -subj /CN=127.0.0.1 \
    -addext 'subjectAltName=IP:127.0.0.1' >/dev/null 2>&1
timeout 600 "$lg" register --db "$work/cpu-g1" --nodes 64 --seed "$seed" 2>/dev/null
timeout 600 "$lg" register --db "$work/cpu-g3" --nodes 64 --seed "$seed" --attestation pin 2>/dev/null
# TLS session resumption (run --tls-resume: each node keeps the KMS's session ticket): 8 nodes make
# the 300 exchanges, so 8 handshakes are full and the others resume. Without --tls-resume every
# connection is a full handshake (a TLS client of its own). "n/a" with a kms-loadgen without it.
can_resume=false
"$lg" --help 2>&1 | grep -q -- --tls-resume && can_resume=true
kms_cpu() { # PROTO plain|cold|tls|resumed EXCHANGES [etcd] -> ms of KMS CPU per exchange (bench/kms_cpu.sh)
    local proto=$1 mode=$2 m=$3 res tls='' lgtls='' nodes=64
    local store=(--db "$work/cpu-$proto")
    [ "${4:-}" = etcd ] && store=(--etcd "$BENCH_ETCD_ENDPOINTS" --etcd-prefix /kkms-bench-cpu/)
    case $mode in
    cold) nodes=1024 store=(--db "$work/cpu-$proto-cold") ;;
    tls) tls="--tls-cert $work/srv.pem --tls-key $work/srv.key" lgtls="--tls-ca $work/srv.pem" ;;
    resumed) tls="--tls-cert $work/srv.pem --tls-key $work/srv.key" lgtls="--tls-ca $work/srv.pem --tls-resume"
        nodes=8 ;;
    esac
    res=$(KMS_CPU_TLS=$tls KMS_CPU_LG=$lgtls KMS_CPU_NODES=$nodes KMS_CPU_OUT=$work/cpu.out \
        "$here/kms_cpu.sh" "$bin" "$lg" "$work" "$proto" "$m" "${store[@]}")
    if [ "${res%% *}" != ok ]; then
        echo "$proto $mode: not every exchange succeeded: $(cat "$work/cpu.out" 2>/dev/null)" >&2
        echo "?"
        return
    fi
    [ "$mode" = tls ] || [ "$mode" = resumed ] && echo "$proto $mode: TLS handshakes $(json tls_full <"$work/cpu.out") full," \
        "$(json tls_resumed <"$work/cpu.out") resumed" >&2
    awk -v us="$(cut -d' ' -f2 <<<"$res")" 'BEGIN { printf "%.2f", us / 1000 }'
}
# Cold caches: 1024 nodes in turn, more than the KMS's 256 cached RSA keys, so every exchange
# meets an EK and an AK it has not prepared, as a fleet's boots do (each boot makes a new AK).
timeout 600 "$lg" register --db "$work/cpu-g1-cold" --nodes 1024 --seed "$seed" 2>/dev/null
timeout 600 "$lg" register --db "$work/cpu-g3-cold" --nodes 1024 --seed "$seed" --attestation pin 2>/dev/null
for proto in g1 g3; do
    R[cpu_${proto}_plain]=$(kms_cpu "$proto" plain 1000)
    R[cpu_${proto}_cold]=$(kms_cpu "$proto" cold 1024)
    R[cpu_${proto}_tls]=$(kms_cpu "$proto" tls 300)
    if $can_resume; then R[cpu_${proto}_resumed]=$(kms_cpu "$proto" resumed 300); else R[cpu_${proto}_resumed]=n/a; fi
    echo "$proto: plain ${R[cpu_${proto}_plain]} ms (cold caches ${R[cpu_${proto}_cold]} ms)," \
        "TLS (full handshake) ${R[cpu_${proto}_tls]} ms," \
        "TLS resumed ${R[cpu_${proto}_resumed]}"
done
# The etcd store: the same 64 G1 nodes imported into a 3-member cluster (kept for section 6).
R[cpu_g1_etcd]=n/a R[mem_etcd]=n/a R[start_etcd]=n/a R[g1_etcd]=n/a R[import_etcd]=n/a
have_etcd=false
if ! command -v etcd >/dev/null; then
    echo "etcd not installed (Debian's etcd-server; make bench installs it): the etcd store is not measured"
elif ! bench_etcd_start "$work/etcd"; then
    echo "the etcd cluster did not become healthy within 30 s ($(tail -1 "$work/etcd/n0.log" | cut -c1-200)):" \
        "the etcd store is not measured"
elif ! timeout 300 "$bin" challenger import --etcd "$BENCH_ETCD_ENDPOINTS" --etcd-prefix /kkms-bench-cpu/ \
    --from-db "$work/cpu-g1" >/dev/null 2>"$work/import.log"; then
    echo "challenger import into etcd failed: $(tail -1 "$work/import.log")"
    have_etcd=true
else
    have_etcd=true
    R[cpu_g1_etcd]=$(kms_cpu g1 plain 1000 etcd)
    echo "g1, etcd store (3 members on 127.0.0.1, challenger --etcd --workers 1): plain ${R[cpu_g1_etcd]} ms"
fi

# ---- 4. tang ----
section "tang: tangd CPU per /rec (clevis decrypt)"
R[tang]="?"
if [ -x /usr/libexec/tangd ] && command -v clevis >/dev/null && command -v socat >/dev/null; then
    mkdir -p "$work/tang"
    /usr/libexec/tangd-keygen "$work/tang" >/dev/null 2>&1
    tport=$(free_port)
    socat "TCP-LISTEN:$tport,bind=127.0.0.1,fork,reuseaddr" EXEC:"/usr/libexec/tangd $work/tang" 2>/dev/null &
    socat_pid=$!
    pids+=($socat_pid)
    sleep 0.3
    printf 'bench-secret' | timeout 60 clevis encrypt tang "{\"url\":\"http://127.0.0.1:$tport\"}" -y >"$work/jwe" 2>/dev/null
    n=100
    sleep 0.3
    before=$(child_ticks "$socat_pid")
    t0=$(date +%s.%N)
    okn=0
    for _ in $(seq $n); do
        [ "$(timeout 10 clevis decrypt <"$work/jwe" 2>/dev/null)" = bench-secret ] && okn=$((okn + 1))
    done
    t1=$(date +%s.%N)
    sleep 0.5 # every connection's process reaped
    after=$(child_ticks "$socat_pid")
    kill "$socat_pid" 2>/dev/null
    R[tang]=$(awk -v d=$((after - before)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.2f", d * 1000 / hz / n }')
    R[tang_client]=$(awk -v a="$t0" -v b="$t1" -v n="$n" 'BEGIN { printf "%.0f", (b - a) * 1000 / n }')
    echo "tangd $(dpkg-query -W -f='${Version}' tang 2>/dev/null): $okn of $n decrypts ok; ${R[tang]} ms of CPU per /rec" \
        "(tangd + its relay process); clevis decrypt takes ${R[tang_client]} ms (wall, client side)"
    # The relay's own share: as many connections to socat ... EXEC:/bin/true (a process that
    # exits at once), each sending a request of the same kind.
    bport=$(free_port)
    socat "TCP-LISTEN:$bport,bind=127.0.0.1,fork,reuseaddr" EXEC:/bin/true 2>/dev/null &
    bpid=$!
    pids+=($bpid)
    sleep 0.3
    before=$(child_ticks "$bpid")
    timeout 120 python3 - "$bport" "$n" <<'PY'
import socket, sys
for _ in range(int(sys.argv[2])):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    s.sendall(b"POST /rec/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}")
    try:
        s.recv(100)  # EOF once /bin/true has exited
    except OSError:
        pass
    s.close()
PY
    sleep 0.5
    after=$(child_ticks "$bpid")
    kill "$bpid" 2>/dev/null
    R[tang_relay]=$(awk -v d=$((after - before)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.2f", d * 1000 / hz / n }')
    R[tang_alone]=$(awk -v a="${R[tang]}" -v b="${R[tang_relay]}" 'BEGIN { printf "%.2f", a - b }')
    echo "the relay with an empty process instead of tangd: ${R[tang_relay]} ms per connection;" \
        "tangd alone: about ${R[tang_alone]} ms per /rec"
else
    echo "tang, clevis or socat missing (make bench installs them)"
fi
R[ratio]=$(awk -v k="${R[cpu_g1_plain]}" -v t="${R[tang]}" 'BEGIN { if (t + 0 > 0 && k + 0 > 0) printf "%.2f", k / t; else print "?" }')
R[ratio_tls]=$(awk -v k="${R[cpu_g1_tls]}" -v t="${R[tang]}" 'BEGIN { if (t + 0 > 0 && k + 0 > 0) printf "%.2f", k / t; else print "?" }')
R[ratio_alone]=$(awk -v k="${R[cpu_g1_plain]}" -v t="${R[tang_alone]:-0}" 'BEGIN { if (t + 0 > 0 && k + 0 > 0) printf "%.2f", k / t; else print "?" }')
echo "KMS G1 / tang /rec: ${R[ratio]} (plain), ${R[ratio_tls]} (TLS); KMS G1 plain / tangd alone: ${R[ratio_alone]}"

# ---- 5. concurrency ----
section "kms-loadgen: 1024 nodes against challenger --workers 2"
timeout 1500 "$here/loadgen.sh" "$bin" "$lg" g1 g3 | tee "$work/conc.txt"

# ---- 6. memory ----
section "KMS memory with registered nodes (one file per node; one process)"
# Only the first 64 nodes get real keys (and are asked 64 exchanges); the others are registered
# under a made-up EK public (register --real-keys): a registration costs the KMS the same.
# mem_etcd: the 10,000 nodes of $work/mem imported into etcd (a prefix of their own), a one-process
# `challenger --etcd`, 64 G1 exchanges of the first nodes, then its VmRSS and VmHWM.
mem_etcd() {
    local t0 t1 t2 kms url before after out rss hwm m=64
    t0=$(date +%s.%N)
    if ! timeout 900 "$bin" challenger import --etcd "$BENCH_ETCD_ENDPOINTS" --etcd-prefix /kkms-bench-mem/ \
        --from-db "$work/mem" >/dev/null 2>"$work/import-mem.log"; then
        echo "10000 nodes in etcd: challenger import failed or took over 15 min: $(tail -1 "$work/import-mem.log")"
        return
    fi
    t1=$(date +%s.%N)
    kms_start "$work/eport" /dev/null 300 --etcd "$BENCH_ETCD_ENDPOINTS" --etcd-prefix /kkms-bench-mem/ \
        --audit-log /dev/null --workers 1
    pids+=($kms)
    kms_ready "$url" "$kms"
    t2=$(date +%s.%N)
    before=$(sched_ns "$kms" 2>/dev/null || echo 0)
    out=$(timeout 300 "$lg" run --url "$url" --nodes 64 \
        --seed "$seed" --concurrency 8 --exchanges "$m" --timeout 240 2>/dev/null | tail -1)
    after=$(sched_ns "$kms" 2>/dev/null || echo 0)
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$kms/status" 2>/dev/null)
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$kms/status" 2>/dev/null)
    kill "$kms" 2>/dev/null
    wait "$kms" 2>/dev/null
    R[mem_etcd]=$(awk -v a="${rss:-0}" -v b="${hwm:-0}" 'BEGIN { printf "%.1f MiB / %.1f MiB", a / 1024, b / 1024 }')
    R[import_etcd]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    R[start_etcd]=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.1f", b - a }')
    R[g1_etcd]="$(json ok <<<"$out")/$m ok, $(json rate <<<"$out")/s, p50 $(json p50_ms <<<"$out") ms, KMS CPU"
    R[g1_etcd]+=" $(awk -v d=$((after - before)) -v m="$m" 'BEGIN { printf "%.2f", d / 1e6 / m }') ms each"
    echo "10000 nodes in etcd: VmRSS ${rss:-?} KiB, VmHWM ${hwm:-?} KiB; import ${R[import_etcd]} s," \
        "KMS ready after ${R[start_etcd]} s; G1 exchanges (8 in flight): ${R[g1_etcd]}"
}
for n in 10 10000 100000; do
    rm -rf "$work/mem" "$work/mport"
    real=$((n < 64 ? n : 64))
    t0=$(date +%s.%N)
    if ! timeout 900 "$lg" register --db "$work/mem" --nodes "$n" --real-keys "$real" --seed "$seed" 2>"$work/mreg.log"; then
        echo "$n nodes: register failed: $(tail -1 "$work/mreg.log")"
        continue
    fi
    t1=$(date +%s.%N)
    kms_start "$work/mport" /dev/null 300 --db "$work/mem" --audit-log /dev/null --workers 1
    pids+=($kms)
    t2=$(date +%s.%N)
    m=$((n > 10000 ? 16 : 64))
    before=$(sched_ns "$kms" 2>/dev/null || echo 0)
    out=$(timeout 300 "$lg" run --url "$url" --nodes "$real" \
        --seed "$seed" --concurrency 8 --exchanges "$m" --timeout 240 2>/dev/null | tail -1)
    after=$(sched_ns "$kms" 2>/dev/null || echo 0)
    R[cpu_mem_$n]=$(awk -v d=$((after - before)) -v m="$m" 'BEGIN { printf "%.2f", d / 1e6 / m }')
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$kms/status" 2>/dev/null)
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$kms/status" 2>/dev/null)
    kill "$kms" 2>/dev/null
    wait "$kms" 2>/dev/null
    R[mem_$n]=$(awk -v a="${rss:-0}" -v b="${hwm:-0}" 'BEGIN { printf "%.1f MiB / %.1f MiB", a / 1024, b / 1024 }')
    R[mem_${n}_kib]="${rss:-?} / ${hwm:-?}"
    R[start_$n]=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.1f", b - a }')
    R[reg_$n]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    R[g1_$n]="$(json ok <<<"$out")/$m ok, $(json rate <<<"$out")/s, p50 $(json p50_ms <<<"$out") ms, KMS CPU ${R[cpu_mem_$n]} ms each"
    echo "$n nodes: VmRSS ${rss:-?} KiB, VmHWM ${hwm:-?} KiB; register ${R[reg_$n]} s, KMS ready after ${R[start_$n]} s;" \
        "G1 exchanges (8 in flight): ${R[g1_$n]}"
    [ "$n" = 10000 ] && $have_etcd && mem_etcd
done
bench_etcd_stop

# ---- summary ----
section "summary (Markdown)"
R[load_end]=$(cut -d' ' -f1-3 /proc/loadavg)
cat <<EOF
Machine: ${R[machine]}; load average ${R[load_start]} at the start, ${R[load_end]} at the end.

| KMS CPU per exchange | G1 | G3 |
|---|---:|---:|
| plain HTTP | ${R[cpu_g1_plain]} ms | ${R[cpu_g3_plain]} ms |
| plain HTTP, cold caches (1024 nodes: each EK and AK new to the KMS) | ${R[cpu_g1_cold]} ms | ${R[cpu_g3_cold]} ms |
| plain HTTP, a swtpm node's exchanges one after another (discovery-challenger) | ${R[real_g1]} ms | ${R[real_g3]} ms |
| this machine's floor per connection: one /healthz, 50 ms apart | ${R[healthz]} ms | ${R[healthz]} ms |
| TLS, full handshake (RSA-2048 certificate) | ${R[cpu_g1_tls]} ms | ${R[cpu_g3_tls]} ms |
| TLS, resumed session | ${R[cpu_g1_resumed]} ms | ${R[cpu_g3_resumed]} ms |
| plain HTTP, etcd store (3 members, 127.0.0.1) | ${R[cpu_g1_etcd]} ms | – |
| floor: RSA-2048 public operations (2 / 3) | $(awk -v u="${R[floor_g1]}" 'BEGIN { printf "%.2f", u / 1000 }') ms | $(awk -v u="${R[floor_g3]}" 'BEGIN { printf "%.2f", u / 1000 }') ms |
| lib/attest's whole work (decode, checks, credential, quote) | $(awk -v u="${R[attest_g1]}" 'BEGIN { printf "%.2f", u / 1000 }') ms | $(awk -v u="${R[attest_g3]}" 'BEGIN { printf "%.2f", u / 1000 }') ms |

One RSA-2048 PKCS#1 v1.5 verification: ${R[verify]} µs; one OAEP encryption: ${R[oaep]} µs.
tangd CPU per /rec (one process per connection, with its relay process): ${R[tang]} ms; the relay
with an empty process: ${R[tang_relay]:-?} ms; tangd alone about ${R[tang_alone]:-?} ms.
KMS G1 / tang: ${R[ratio]} (plain HTTP), ${R[ratio_tls]} (TLS); G1 plain / tangd alone: ${R[ratio_alone]}.

| kms-loadgen, 1024 nodes | in flight | exchanges | ok / failed | rate/s | p50 ms | p99 ms | retries |
|---|---:|---:|---|---:|---:|---:|---:|
EOF
while read -r proto c m js; do
    echo "| ${proto^^} | ${c#c=} | ${m#exchanges=} | $(json ok <<<"$js") / $(json failed <<<"$js") | $(json rate <<<"$js") |" \
        "$(json p50_ms <<<"$js") | $(json p99_ms <<<"$js") | $(json retries <<<"$js") |"
done <"$work/conc.txt"
cat <<EOF

| registered nodes | KMS VmRSS / VmHWM | KMS ready after | G1 exchanges then (8 in flight) | register took |
|---:|---|---:|---|---:|
| 10 | ${R[mem_10]:-?} | ${R[start_10]:-?} s | ${R[g1_10]:-?} | ${R[reg_10]:-?} s |
| 10,000 | ${R[mem_10000]:-?} | ${R[start_10000]:-?} s | ${R[g1_10000]:-?} | ${R[reg_10000]:-?} s |
| 100,000 | ${R[mem_100000]:-?} | ${R[start_100000]:-?} s | ${R[g1_100000]:-?} | ${R[reg_100000]:-?} s |
| 10,000 in etcd | ${R[mem_etcd]} | ${R[start_etcd]} s | ${R[g1_etcd]} | import ${R[import_etcd]} s |

single commands (hyperfine, mean ± σ): --list ${R[hf_list]:-?}; tpm-hash (EK certificate) ${R[hf_hash_ek]:-?};
tpm-hash (CreatePrimary) ${R[hf_hash_plain]:-?}; a node's G1 exchange with a swtpm ${R[hf_g1]:-?}; G3 ${R[hf_g3]:-?}.
EOF
