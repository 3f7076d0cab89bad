#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# lib/etcd against a real 3-member etcd cluster (tests/lib/etcd.sh): every operation, a
# create-if-absent race between processes, CAS, leases, watch with resume and compaction, the
# leader killed during 200 writes, all members down, authentication, TLS with client
# certificates, and values over the size limit. Every command is time-limited (etcdt).
. "$(dirname "$0")/../lib/common.sh"
ETCD_TOOL=$1
. "$(dirname "$0")/../lib/etcd.sh"

has() { grep -F -- "$2" "$1" >/dev/null; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

etcd_cluster_start
diag <<<"cluster $ETCD_ENDPOINTS, leader member $(etcd_leader)"

# ---- single keys ----
etcdt put /kms/a hello >"$T/put.out" 2>"$T/put.err"
check "put answers with the revision it made" 'grep -E "^ok [0-9]+$" "$T/put.out" >/dev/null'
rev_a=$(awk '{print $2}' "$T/put.out")
etcdt get /kms/a >"$T/get.out" 2>&1
check "get returns the value and its revisions" 'has "$T/get.out" "value hello mod=$rev_a create=$rev_a version=1"'
etcdt get /kms/a serializable >"$T/gets.out" 2>&1
check "serializable get (local member)" 'has "$T/gets.out" "value hello"'
etcdt put /kms/a world >/dev/null 2>&1
etcdt get /kms/a linearizable "$rev_a" >"$T/getrev.out" 2>&1
check "get at an older revision sees the older value" 'has "$T/getrev.out" "value hello mod=$rev_a"'
etcdt get /kms/missing >"$T/absent.out" 2>"$T/absent.err"
rc=$?
check "get of a missing key: absent (exit 3), nothing logged" '[ $rc = 3 ] && has "$T/absent.out" absent && [ ! -s "$T/absent.err" ]'

# ---- prefix listing with pagination (3 keys per page), consistent snapshot ----
for i in 1 2 3 4 5 6 7; do etcdt put "/kms/list/k$i" "v$i" >/dev/null 2>&1; done
etcdt put /kms/list0 outside >/dev/null 2>&1
etcdt put /kms/lis outside >/dev/null 2>&1
etcdt --page 3 list /kms/list/ >"$T/list.out" 2>"$T/list.err"
check "list over 3 pages returns the 7 keys in order, nothing outside the prefix" \
    '[ "$(grep -c "^/kms/list/k" "$T/list.out")" = 7 ] && has "$T/list.out" "count 7" && ! has "$T/list.out" outside &&
     [ "$(grep "^/kms/list/" "$T/list.out" | sort -c && echo sorted)" = sorted ]'
etcdt list /kms/list/ serializable >"$T/lists.out" 2>&1
check "serializable list" 'has "$T/lists.out" "count 7"'
lrev=$(awk '/^revision/ {print $2}' "$T/list.out")
etcdt put /kms/list/k8 v8 >/dev/null 2>&1
etcdt put /kms/list/k1 changed >/dev/null 2>&1
etcdt --page 2 list /kms/list/ linearizable "$lrev" >"$T/listrev.out" 2>&1
check "list at an older revision: the snapshot as it was, over 4 pages" \
    'has "$T/listrev.out" "count 7" && has "$T/listrev.out" "/kms/list/k1 v1" && ! has "$T/listrev.out" k8'
check "the newest listing sees the changes" 'etcdt list /kms/list/ | grep -F "/kms/list/k1 changed" >/dev/null'
etcdt del /kms/list/k8 >/dev/null 2>&1
etcdt del /kms/list/ prefix >"$T/del.out" 2>&1
check "delete of a prefix deletes exactly its 7 keys" 'has "$T/del.out" "deleted 7"'
etcdt del /kms/list/ prefix >"$T/del2.out" 2>&1
check "deleting again is a success with 0 deleted (safe to repeat)" 'has "$T/del2.out" "deleted 0"'
etcdt get /kms/list0 >"$T/outside.out" 2>&1
check "keys next to the prefix are untouched" 'has "$T/outside.out" "value outside"'

# ---- create-if-absent: idempotent, and raced by two processes ----
etcdt create /kms/c1 same >"$T/c1.out" 2>&1
etcdt create /kms/c1 same >"$T/c1b.out" 2>&1
rc=$?
check "create, then create again with the same value: success (a retried create)" \
    'has "$T/c1.out" created && [ $rc = 0 ] && has "$T/c1b.out" created'
etcdt create /kms/c1 other >"$T/c1c.out" 2>&1
rc=$?
check "create with another value: exists (exit 4) with the current value" '[ $rc = 4 ] && has "$T/c1c.out" "exists same"'
winners_ok=0
for round in 1 2 3 4 5 6 7 8; do
    etcdt create "/kms/race/$round" A >"$T/race-A.$round" 2>&1 &
    pa=$!
    etcdt create "/kms/race/$round" B >"$T/race-B.$round" 2>&1 &
    pb=$!
    wait $pa
    ra=$?
    wait $pb
    rb=$?
    winner=$(etcdt get "/kms/race/$round" 2>/dev/null | awk '{print $2}')
    if { [ $ra = 0 ] && [ $rb = 4 ] && [ "$winner" = A ] && has "$T/race-B.$round" "exists A"; } ||
        { [ $rb = 0 ] && [ $ra = 4 ] && [ "$winner" = B ] && has "$T/race-A.$round" "exists B"; }; then
        winners_ok=$((winners_ok + 1))
    else
        diag <<<"round $round: A rc=$ra B rc=$rb stored=$winner"
    fi
done
check "create raced by two processes, 8 rounds: each time exactly one wins, the other sees its value" \
    '[ $winners_ok = 8 ]'

# ---- compare-and-swap ----
etcdt put /kms/cas v1 >"$T/cas0.out" 2>&1
m1=$(awk '{print $2}' "$T/cas0.out")
etcdt cas /kms/cas "$m1" v2 >"$T/cas1.out" 2>&1
check "CAS with the current mod_revision swaps" 'has "$T/cas1.out" swapped'
m2=$(awk '{print $2}' "$T/cas1.out")
etcdt cas /kms/cas "$m1" v3 >"$T/cas2.out" 2>&1
rc=$?
check "CAS with a stale mod_revision: conflict (exit 4) with the current revision and value" \
    '[ $rc = 4 ] && has "$T/cas2.out" "conflict $m2 v2"'
etcdt cas /kms/cas "$m1" v2 >"$T/cas3.out" 2>&1
check "the same CAS repeated (its answer lost): success, not a conflict" 'has "$T/cas3.out" "swapped $m2"'
etcdt cas /kms/cas-new 0 first >"$T/cas4.out" 2>&1
etcdt cas /kms/cas-new 0 second >"$T/cas5.out" 2>&1
rc=$?
check "CAS from revision 0 creates once" 'has "$T/cas4.out" swapped && [ $rc = 4 ] && has "$T/cas5.out" "conflict"'
etcdt cas-del /kms/cas "$m1" >"$T/casd1.out" 2>&1
rc1=$?
etcdt cas-del /kms/cas "$m2" >"$T/casd2.out" 2>&1
rc2=$?
etcdt cas-del /kms/cas "$m2" >"$T/casd3.out" 2>&1
rc3=$?
check "CAS delete: refused when stale, done when current, and done again when repeated" \
    '[ $rc1 = 4 ] && [ $rc2 = 0 ] && [ $rc3 = 0 ] && has "$T/casd3.out" deleted'

# ---- leases ----
etcdt lease-grant 30 >"$T/lease.out" 2>&1
lease=$(awk '{print $2}' "$T/lease.out")
check "lease grant returns an ID and TTL" 'grep -E "^lease [0-9]+ 30$" "$T/lease.out" >/dev/null'
etcdt put /kms/leased x "$lease" >/dev/null 2>&1
etcdt get /kms/leased >"$T/leased.out" 2>&1
etcdt lease-keepalive "$lease" >"$T/ka.out" 2>&1
check "a key put with the lease carries it; keepalive renews it" \
    'has "$T/leased.out" "lease=$lease" && has "$T/ka.out" "ttl 30"'
etcdt lease-revoke "$lease" >"$T/rv.out" 2>&1
etcdt lease-revoke "$lease" >"$T/rv2.out" 2>&1
etcdt get /kms/leased >/dev/null 2>&1
rc=$?
etcdt lease-keepalive "$lease" >"$T/ka2.out" 2>&1
rc2=$?
check "revoke removes its keys; revoking again is a success; keepalive then says expired (exit 3)" \
    'has "$T/rv.out" revoked && has "$T/rv2.out" revoked && [ $rc = 3 ] && [ $rc2 = 3 ] && has "$T/ka2.out" expired'
etcdt put /kms/x y 999999 >"$T/deadlease.out" 2>"$T/deadlease.err"
rc=$?
check "a put with an unknown lease: error naming the lease" '[ $rc = 1 ] && has "$T/deadlease.err" "lease 999999 not found"'

# ---- watch: live events, then a resume from a revision ----
etcdt watch /kms/w/ 0 3 20 prefix >"$T/watch1.out" 2>"$T/watch1.err" &
wpid=$!
for i in $(seq 50); do has "$T/watch1.out" watching && break; sleep 0.1; done
etcdt put /kms/w/1 one >"$T/w1.out" 2>&1
w1=$(awk '{print $2}' "$T/w1.out")
etcdt put /kms/w/2 two >/dev/null 2>&1
etcdt put /kms/other no >/dev/null 2>&1
etcdt del /kms/w/1 >/dev/null 2>&1
wait $wpid
check "watch of a prefix sees puts and a delete, in order, nothing outside the prefix" \
    '[ "$(grep -E "^(put|delete)" "$T/watch1.out" | cut -d" " -f1,2,3 | tr "\n" ";")" = "put /kms/w/1 one;put /kms/w/2 two;delete /kms/w/1 $((w1 + 3));" ]'
etcdt watch /kms/w/ "$w1" 3 10 prefix >"$T/watch2.out" 2>&1
check "watch resumed from a revision replays the same events" \
    '[ "$(grep -E "^(put|delete)" "$T/watch2.out")" = "$(grep -E "^(put|delete)" "$T/watch1.out")" ]'

# ---- compaction: a watch from a compacted revision says so; so does a read ----
etcdt put /kms/w/3 three >/dev/null 2>&1
cur=$(etcdt put /kms/w/4 four 2>/dev/null | awk '{print $2}')
etcdt compact "$cur" >"$T/compact.out" 2>&1
check "compaction" 'has "$T/compact.out" compacted'
etcdt watch /kms/w/ "$w1" 10 10 prefix >"$T/watch3.out" 2>"$T/watch3.err"
rc=$?
check "watch from a compacted revision: reported (exit 5) with the compaction revision, so the caller relists" \
    '[ $rc = 5 ] && has "$T/watch3.out" "compacted $cur"'
etcdt get /kms/a linearizable "$rev_a" >/dev/null 2>"$T/getc.err"
rc=$?
check "get at a compacted revision: its own error (exit 5)" '[ $rc = 5 ]'
etcdt watch /kms/w/ $((cur + 1)) 1 10 prefix >"$T/watch4.out" 2>&1 &
wpid=$!
for i in $(seq 50); do has "$T/watch4.out" watching && break; sleep 0.1; done
etcdt put /kms/w/5 five >/dev/null 2>&1
wait $wpid
check "a new watch from the compaction revision + 1 works" 'has "$T/watch4.out" "put /kms/w/5 five"'

# ---- a replay bigger than the client keeps: reported, not retried forever ----
head -c 900 /dev/zero | tr '\0' r >"$T/r900"
rep0=$(etcdt put /kms/rep/0 @"$T/r900" 2>/dev/null | awk '{print $2}')
for i in $(seq 1 99); do etcdt put "/kms/rep/$i" @"$T/r900" >/dev/null 2>&1; done
start=$(date +%s%N)
etcdt --max-value 1000 --max-response 70000 watch /kms/rep/ "$rep0" 100 10 prefix >"$T/rep.out" 2>"$T/rep.err"
rc=$?
check "a watch replay over the answer bound: -E2BIG at once (exit 6), so the caller lists instead" \
    '[ $rc = 6 ] && has "$T/rep.out" too-big && grep -E "(a chunk of the response is over the limit|watch: a message over)" "$T/rep.err" >/dev/null && [ $(ms_since $start) -lt 5000 ]'
etcdt watch /kms/rep/ "$rep0" 100 10 prefix >"$T/rep2.out" 2>&1
check "the same replay within the default bound: all 100 events" '[ "$(grep -c "^put /kms/rep/" "$T/rep2.out")" = 100 ]'

# ---- sizes ----
head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' x >"$T/big"
start=$(date +%s%N)
etcdt put /kms/big @"$T/big" >"$T/big.out" 2>"$T/big.err"
rc=$?
diag <"$T/big.err"
check "a 2 MiB value is refused by the client (1.5 MiB limit) at once, saying so" \
    '[ $rc = 1 ] && has "$T/big.err" "value of 2097152 bytes is over the 1572864-byte limit" && [ $(ms_since $start) -lt 3000 ]'
head -c 1800000 /dev/zero | tr '\0' x >"$T/big17"
etcdt --max-value 4000000 put /kms/big @"$T/big17" >"$T/big2.out" 2>"$T/big2.err"
rc=$?
diag <"$T/big2.err"
check "with the client's limit raised, etcd refuses 1.7 MB: one line naming the endpoint and etcd's message" \
    '[ $rc = 1 ] && grep -E "^etcd_tool: etcd http://127.0.0.1:[0-9]+: put /kms/big refused: HTTP 400: etcdserver: request is too large$" "$T/big2.err" >/dev/null &&
     [ "$(wc -l <"$T/big2.err")" = 1 ]'
head -c $((1024 * 1024)) /dev/zero | tr '\0' y >"$T/mib"
etcdt put /kms/mib @"$T/mib" >/dev/null 2>&1
etcdt --max-value 100000 get /kms/mib >"$T/mib.out" 2>"$T/mib.err"
rc=$?
check "an answer holding a value over the client's limit is refused" '[ $rc = 1 ] && has "$T/mib.err" "over the size limit"'
etcdt get /kms/mib >"$T/mib2.out" 2>&1
check "a 1 MiB value round-trips" '[ "$(wc -c <"$T/mib2.out")" -gt 1048576 ]'

# ---- the leader killed during 200 writes ----
leader=$(etcd_leader)
[ -n "$leader" ] || bail "no leader"
# the leader first in the list, so the client is talking to it when it dies
eps=${ETCD_EP[leader]}
for i in 0 1 2; do [ "$i" != "$leader" ] && eps+=",${ETCD_EP[i]}"; done
timeout -k 5 200 "$ETCD_TOOL" --endpoints "$eps" watch /kms/fo/ 0 200 150 prefix >"$T/fo-watch.out" 2>"$T/fo-watch.err" &
fwpid=$!
for i in $(seq 50); do has "$T/fo-watch.out" watching && break; sleep 0.1; done
timeout -k 5 200 "$ETCD_TOOL" --endpoints "$eps" put-loop /kms/fo/ 200 >"$T/fo.out" 2>"$T/fo.err" &
fpid=$!
for i in $(seq 300); do [ "$(grep -c ^acked "$T/fo.out")" -ge 40 ] && break; sleep 0.1; done
etcd_kill "$leader"
diag <<<"killed leader member $leader after $(grep -c ^acked "$T/fo.out") acknowledged puts"
wait $fpid
grep -E "^max_ms" "$T/fo.out" | diag
acked=$(grep -c ^acked "$T/fo.out")
max_ms=$(awk '/^max_ms/ {print $2}' "$T/fo.out")
check "200 puts through the leader's death: all acknowledged ($acked)" '[ "$acked" = 200 ]'
check "no call took longer than its 10 s deadline (longest ${max_ms} ms)" '[ -n "$max_ms" ] && [ "$max_ms" -le 11000 ]'
check "the client moved to another endpoint (logged)" \
    'grep -E "(trying the next endpoint|cannot connect|connection reset|timed out)" "$T/fo.err" >/dev/null'
etcdt list /kms/fo/ >"$T/fo-list.out" 2>&1
missing=0
while read -r verb i ms; do
    [ "$verb" = acked ] || continue
    grep -Fx "/kms/fo/$(printf %04d "$i") v$i" "$T/fo-list.out" >/dev/null || missing=$((missing + 1))
done <"$T/fo.out"
check "every acknowledged put is readable afterwards" '[ $missing = 0 ] && has "$T/fo-list.out" "count 200"'
wait $fwpid
check "the watch resumed on another member and saw all 200 puts, none twice" \
    '[ "$(grep -c "^put /kms/fo/" "$T/fo-watch.out")" = 200 ] && [ "$(grep "^put /kms/fo/" "$T/fo-watch.out" | sort -u | wc -l)" = 200 ]'
etcd_restart "$leader"
etcd_wait_healthy 20
etcdt_ep "$leader" get /kms/fo/0199 serializable >"$T/rejoin.out" 2>&1
for i in $(seq 30); do has "$T/rejoin.out" "value v199" && break; sleep 0.3
    etcdt_ep "$leader" get /kms/fo/0199 serializable >"$T/rejoin.out" 2>&1; done
check "the killed member restarted with its data and caught up" 'has "$T/rejoin.out" "value v199"'

# ---- all endpoints down ----
read -r -a dead <<<"$(_etcd_ports)"
start=$(date +%s%N)
timeout -k 5 30 "$ETCD_TOOL" --endpoints "http://127.0.0.1:${dead[0]},http://127.0.0.1:${dead[1]}" --deadline 3000 \
    get /kms/a >"$T/down.out" 2>"$T/down.err"
rc=$?
elapsed=$(ms_since $start)
tail -n 1 "$T/down.err" | diag
check "every endpoint down: exit 1 within the 3 s deadline (${elapsed} ms)" '[ $rc = 1 ] && [ $elapsed -lt 5000 ]'
check "the last line says no endpoint answered, naming the last one tried and why" \
    'tail -n 1 "$T/down.err" | grep -E "no endpoint answered within 3000 ms \(last: http://127.0.0.1:[0-9]+/v3/kv/range: (cannot connect: .*Connection refused|timed out)" >/dev/null'
check "one line per endpoint while retrying, then the error: not one per attempt" '[ "$(wc -l <"$T/down.err")" = 3 ]'
timeout -k 5 30 "$ETCD_TOOL" --endpoints "ftp://127.0.0.1:1" get /kms/a >/dev/null 2>"$T/badep.err"
rc=$?
check "a bad endpoint is refused at once, named" '[ $rc = 1 ] && has "$T/badep.err" "endpoint ftp://127.0.0.1:1 is not an http:// or https:// URL"'

# ---- a member that accepts connections and never answers ----
python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
print(s.getsockname()[1], flush=True)
held = []
while True:
    c, _ = s.accept(); held.append(c)' >"$T/hole.port" 2>"$T/hole.err" &
hole_pid=$!
on_exit "stop_pid $hole_pid 2"
for i in $(seq 50); do [ -s "$T/hole.port" ] && break; sleep 0.1; done
hole="http://127.0.0.1:$(cat "$T/hole.port")"
start=$(date +%s%N)
timeout -k 5 30 "$ETCD_TOOL" --endpoints "$hole,$ETCD_ENDPOINTS" get /kms/a >"$T/hole.out" 2>"$T/hole.err"
rc=$?
elapsed=$(ms_since $start)
check "a silent member first in the list: its attempt times out after about 1 s, the next answers (${elapsed} ms)" \
    '[ $rc = 0 ] && has "$T/hole.out" "value world" && [ $elapsed -lt 4000 ] && has "$T/hole.err" "$hole/v3/kv/range: timed out"'
hrev=$(etcdt put /kms/hw seen 2>/dev/null | awk '{print $2}')
timeout -k 5 30 "$ETCD_TOOL" --endpoints "$hole,$ETCD_ENDPOINTS" watch /kms/hw "$hrev" 1 10 >"$T/hole-w.out" 2>&1
check "a watch skips the silent member too" 'has "$T/hole-w.out" "put /kms/hw seen"'
start=$(date +%s%N)
timeout -k 5 30 "$ETCD_TOOL" --endpoints "$hole" --deadline 2500 put /kms/h x >/dev/null 2>"$T/hole2.err"
rc=$?
elapsed=$(ms_since $start)
check "only the silent member: the call ends at its 2.5 s deadline (${elapsed} ms)" \
    '[ $rc = 1 ] && [ $elapsed -ge 2000 ] && [ $elapsed -lt 5000 ] && has "$T/hole2.err" "no endpoint answered within 2500 ms"'
stop_pid $hole_pid 2

# ---- authentication ----
printf 'kmspw\n' >"$T/kms.pw"
printf 'wrong\n' >"$T/wrong.pw"
etcd_enable_auth kms kmspw /kms/
etcdt --user kms --password-file "$T/kms.pw" put /kms/auth ok >"$T/auth1.out" 2>"$T/auth1.err"
arev=$(awk '{print $2}' "$T/auth1.out")
check "authenticated put with a token" 'has "$T/auth1.out" ok'
etcdt --user kms --password-file "$T/kms.pw" put /other nope >/dev/null 2>"$T/auth2.err"
rc=$?
check "outside the role's prefix: permission denied, said once" \
    '[ $rc = 1 ] && has "$T/auth2.err" "permission denied" && [ "$(wc -l <"$T/auth2.err")" = 1 ]'
start=$(date +%s%N)
etcdt --user kms --password-file "$T/wrong.pw" get /kms/auth >/dev/null 2>"$T/auth3.err"
rc=$?
diag <"$T/auth3.err"
check "wrong password: a clear error at once (not retried to the deadline)" \
    '[ $rc = 1 ] && has "$T/auth3.err" "authentication as kms refused: etcdserver: authentication failed" && [ $(ms_since $start) -lt 3000 ]'
etcdt get /kms/auth >/dev/null 2>"$T/auth4.err"
rc=$?
check "no credentials while auth is on: refused, saying so" '[ $rc = 1 ] && has "$T/auth4.err" "user name is empty"'
etcdt --user kms --password-file "$T/kms.pw" watch /kms/auth "$arev" 1 10 >"$T/auth5.out" 2>&1
check "authenticated watch" 'has "$T/auth5.out" "put /kms/auth ok"'
etcdt --user kms --password-file "$T/kms.pw" watch /other 1 1 5 >"$T/auth6.out" 2>"$T/auth6.err"
rc=$?
check "watch outside the role's prefix: refused" '[ $rc = 1 ] && has "$T/auth6.err" "permission denied"'
# The whole cluster killed and restarted during authenticated writes.
etcdt --user kms --password-file "$T/kms.pw" put-loop /kms/restart/ 60 >"$T/restart.out" 2>"$T/restart.err" &
rpid=$!
for i in $(seq 300); do [ "$(grep -c ^acked "$T/restart.out")" -ge 10 ] && break; sleep 0.1; done
for i in 0 1 2; do etcd_kill "$i"; done
for i in 0 1 2; do etcd_restart "$i"; done
wait $rpid
grep -E "^max_ms" "$T/restart.out" | diag
check "the whole cluster restarted during 60 authenticated writes: all acknowledged" \
    '[ "$(grep -c ^acked "$T/restart.out")" = 60 ]'
etcd_wait_healthy 20
# Disabling auth drops every token (etcd-io/etcd v3.4 auth/simple_token.go, disable): after it is
# enabled again the client's token is refused and it must authenticate again, within the call.
etcdt --user kms --password-file "$T/kms.pw" put-loop /kms/reauth/ 300 >"$T/reauth.out" 2>"$T/reauth.err" &
rpid=$!
for i in $(seq 300); do [ "$(grep -c ^acked "$T/reauth.out")" -ge 10 ] && break; sleep 0.1; done
etcdt "${ETCD_AUTH_OPTS[@]}" raw auth/disable '{}' >"$T/toggle.out" 2>&1
sleep 0.2
etcdt raw auth/enable '{}' >>"$T/toggle.out" 2>&1
wait $rpid
diag <"$T/toggle.out"
check "auth disabled and enabled again during 300 writes: all acknowledged" '[ "$(grep -c ^acked "$T/reauth.out")" = 300 ]'
check "the refused token was replaced by a new one (logged)" \
    'has "$T/reauth.err" "token refused" && has "$T/reauth.err" "authenticating again"'
etcd_wait_healthy 20
etcd_cluster_stop

# ---- TLS with client certificates ----
etcd_cluster_start tls
etcdt put /kms/tls secure >"$T/tls1.out" 2>"$T/tls1.err"
etcdt get /kms/tls >"$T/tls2.out" 2>&1
check "https with the CA and a client certificate: put and get" 'has "$T/tls1.out" ok && has "$T/tls2.out" "value secure"'
etcdt watch /kms/tls "$(awk '{print $2}' "$T/tls1.out")" 1 10 >"$T/tls3.out" 2>&1
check "watch over TLS" 'has "$T/tls3.out" "put /kms/tls secure"'
timeout -k 5 30 "$ETCD_TOOL" --endpoints "$ETCD_ENDPOINTS" --ca "$T/pki/ca.pem" --deadline 3000 get /kms/tls \
    >/dev/null 2>"$T/tls4.err"
rc=$?
diag < <(tail -n 2 "$T/tls4.err")
check "without a client certificate: refused by the cluster" '[ $rc = 1 ]'
start=$(date +%s%N)
timeout -k 5 30 "$ETCD_TOOL" --endpoints "$ETCD_ENDPOINTS" --ca "$T/pki/other-ca.pem" --cert "$T/pki/client.pem" \
    --key "$T/pki/client.key" get /kms/tls >/dev/null 2>"$T/tls5.err"
rc=$?
check "a server certificate from another CA: refused at once, not retried" \
    '[ $rc = 1 ] && has "$T/tls5.err" "certificate verify failed" && [ $(ms_since $start) -lt 3000 ]'
timeout -k 5 30 "$ETCD_TOOL" --endpoints "$ETCD_ENDPOINTS" --ca "$T/pki/ca.pem" --cert "$T/pki/other.pem" \
    --key "$T/pki/other.key" --deadline 3000 get /kms/tls >/dev/null 2>"$T/tls6.err"
rc=$?
check "a client certificate from another CA: refused by the cluster" '[ $rc = 1 ]'
timeout -k 5 30 "$ETCD_TOOL" --endpoints "$ETCD_ENDPOINTS" --ca "$T/pki/ca.pem" --cert "$T/pki/client.pem" \
    --key "$T/pki/other.key" get /kms/tls >/dev/null 2>"$T/tls7.err"
rc=$?
check "a client key that does not match its certificate: refused before any connection" \
    '[ $rc = 1 ] && has "$T/tls7.err" "does not match the certificate"'

# Under ASan/UBSan the reports go to the tool's stderr, kept in the files above.
check "no sanitizer report in any etcd_tool output" '! grep -l -E "(Address|Leak|Undefined)Sanitizer|runtime error:" "$T"/*.err "$T"/*.out >/dev/null 2>&1'

done_testing
