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
