#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# The multicall dispatch (docs/README.md §2): names, --list, install-links, --help, exit codes.
. "$(dirname "$0")/../lib/common.sh"

applets="challenger discovery-challenger kcrypt mdns-responder tpm-hash"
aliases="kcrypt-challenger kcrypt-discovery-challenger simple-mdns-server"

run_kkms "$T/out" "$T/err" rc --list
check "--list exits 0" '[ "$rc" = 0 ]'
for a in $applets $aliases; do
    check "--list names $a" 'grep -qw -- "$a" "$T/out"'
done

run_kkms "$T/out" "$T/err" rc no-such-applet
check "unknown applet: exit 2" '[ "$rc" = 2 ]'
check "unknown applet: names it and lists the applets" ' grep -q "no-such-applet" "$T/err" && grep -q tpm-hash "$T/err"'

ln -s "$KAIROS_KMS" "$T/frobnicate"
timeout 10 "$T/frobnicate" >"$T/out" 2>"$T/err"
rc=$?
check "unknown argv[0] name: exit 2 with the list" '[ "$rc" = 2 ] && grep -q kcrypt "$T/err"'

run_kkms "$T/out" "$T/err" rc
check "no arguments: usage on stderr, exit 2" '[ "$rc" = 2 ] && grep -q Usage "$T/err"'

for a in $applets; do
    run_kkms "$T/out" "$T/err" rc "$a" --help
    if grep -q "not built yet" <("$KAIROS_KMS" --list | grep "^$a "); then
        check "$a (not built yet): says so, exit 2" '[ "$rc" = 2 ] && grep -q "not built yet" "$T/err"'
    else
        check "$a --help: usage on stdout, exit 0" '[ "$rc" = 0 ] && grep -q Usage "$T/out" && grep -q Example "$T/out"'
    fi
done
run_kkms "$T/out" "$T/err" rc tpm-hash --no-such-flag
check "unknown flag: exit 2 naming it" '[ "$rc" = 2 ] && grep -q -- --no-such-flag "$T/err"'
run_kkms "$T/out" "$T/err" rc discovery-challenger frobnicate
check "unknown discovery-challenger command: exit 2" '[ "$rc" = 2 ] && grep -q frobnicate "$T/err"'

# Every applet's options go through one table parser: one line naming the flag, exit 2.
usage_error() { # usage_error DESCRIPTION PATTERN APPLET ARGS...
    local what=$1 pattern=$2
    shift 2
    run_kkms "$T/out" "$T/err" rc "$@"
    check "$what: exit 2, one line naming the flag" '[ "$rc" = 2 ] && one_line "$T/err" && grep -q -- "$pattern" "$T/err"'
}
for a in $applets; do
    usage_error "$a --no-such-flag" "--no-such-flag: unknown option" "$a" --no-such-flag
done
usage_error "challenger --db without its value" "--db: missing value" challenger --db
usage_error "kcrypt enroll --tpm-pcrs without its value" "enroll --tpm-pcrs: missing value" kcrypt enroll --tpm-pcrs
usage_error "discovery-challenger get --timeout without its value" "get --timeout: missing value" \
    discovery-challenger get --timeout
usage_error "mdns-responder -port=x (Go-style)" "--port x: expected a port number" mdns-responder -port=x
usage_error "tpm-hash --debug=1" "--debug=1: takes no value" tpm-hash --debug=1
usage_error "kcrypt --timeout 0" "--timeout 0: expected a positive number of seconds" kcrypt --timeout 0 unlock-all
usage_error "challenger --max-conns 0" "--max-conns 0: expected a number of connections" challenger --db "$T/db" \
    --max-conns 0
usage_error "challenger --listen 1.2.3.4" "--listen 1.2.3.4: expected ADDR:PORT" challenger --db "$T/db" \
    --listen 1.2.3.4
usage_error "challenger --metrics-listen 1.2.3.4" "--metrics-listen 1.2.3.4: expected ADDR:PORT" challenger \
    --db "$T/db" --metrics-listen 1.2.3.4
usage_error "kcrypt --plugin-dir 17 times" "--plugin-dir d: given more than 16 times" kcrypt \
    $(for i in $(seq 17); do echo --plugin-dir d; done) unlock-all
usage_error "challenger approve with two hashes" "approve: expected TPM_HASH" challenger approve --db "$T/db" a b
usage_error "tpm-hash with an argument" "unexpected argument extra" tpm-hash extra

mkdir "$T/links"
run_kkms "$T/out" "$T/err" rc install-links "$T/links"
check "install-links exits 0" '[ "$rc" = 0 ]'
for a in $applets $aliases; do
    check "install-links made $a -> the binary" '[ "$(readlink -f "$T/links/$a")" = "$(readlink -f "$KAIROS_KMS")" ]'
done
run_kkms "$T/out" "$T/err" rc install-links "$T/links"
check "install-links again replaces its own links" '[ "$rc" = 0 ]'
run_kkms "$T/out" "$T/err" rc install-links --target /usr/bin/kairos-kms "$T/links"
check "install-links --target points the links there" '[ "$(readlink "$T/links/kcrypt")" = /usr/bin/kairos-kms ]'
rm "$T/links/kcrypt" && echo keep >"$T/links/kcrypt"
run_kkms "$T/out" "$T/err" rc install-links "$T/links"
check "install-links refuses to replace a regular file" '[ "$rc" = 1 ] && grep -q "not a symlink" "$T/err" && grep -q keep "$T/links/kcrypt"'
run_kkms "$T/out" "$T/err" rc install-links
check "install-links without DIR: exit 2" '[ "$rc" = 2 ]'

done_testing
