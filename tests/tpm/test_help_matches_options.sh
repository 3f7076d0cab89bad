#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# --help tells the truth: the help texts are written by hand (they explain, group and give
# examples), the options are parsed from one declared table per applet (applets/common.c,
# applet_parse). This proves the two agree both ways: every option a table declares is named in its
# applet's --help, and every --flag a --help names is one the applet accepts.
. "$(dirname "$0")/../lib/common.sh"

src=$(cd "$(dirname "$0")/../../applets" && pwd)

# The long names declared in a table-bearing source file (APPLET_TPM_OPTIONS adds three rows).
table_names() {
    grep -o '\.name = "[a-z0-9-]*"' "$src/$1" | sed 's/.*"\(.*\)"/\1/'
    if grep -q 'APPLET_TPM_OPTIONS(' "$src/$1"; then printf '%s\n' tpm-device tpm-timeout debug; fi
}

# Flags of other programs that help texts mention on purpose (cryptsetup's, in an example).
foreign="--test-passphrase"

# applet words | the help command | the table files | the commands that parse them
while IFS='|' read -r name helpcmd files parsers; do
    read -ra hc <<<"$helpcmd"
    run_kkms "$T/help" "$T/err" rc "${hc[@]}" --help
    check "$name --help: exit 0" '[ "$rc" = 0 ] && [ -s "$T/help" ]'

    missing=""
    for f in $files; do
        for n in $(table_names "$f"); do
            grep -q -- "--$n\b" "$T/help" || missing="$missing --$n"
        done
    done
    check "$name: every option of its table is named in --help${missing:+ (missing:$missing)}" '[ -z "$missing" ]'

    unknown=""
    # Lines that show another applet's command line (an example) name that applet's flags.
    for flag in $(grep -vE "kairos-kms [a-z-]+" "$T/help" | grep -o -- '--[a-z][a-z0-9-]*' | sort -u) \
        $(grep -E "kairos-kms ${hc[0]}( |$)" "$T/help" | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
        case " $foreign --help " in *" $flag "*) continue ;; esac
        known=false
        IFS=',' read -ra pcs <<<"$parsers"
        for p in "${pcs[@]}"; do
            read -ra pc <<<"$p"
            # FLAG=x then a flag no table has: parsing stops at the first error, before any work
            # is done. An unknown FLAG is named as "FLAG=x: unknown option" (exit 2); a known one
            # takes x (then the made-up flag is the unknown one), or is refused as taking no
            # value, or its handler refuses x (exit 2, or 1 when x is a file it cannot read).
            run_kkms "$T/out" "$T/perr" prc "${pc[@]}" "$flag=x" --zz-no-such-flag
            if ! grep -q -- "$flag=x: unknown option" "$T/perr" && { [ "$prc" = 2 ] || [ "$prc" = 1 ]; }; then
                known=true
                break
            fi
        done
        $known || unknown="$unknown $flag"
    done
    check "$name: every --flag its --help names is accepted${unknown:+ (not accepted:$unknown)}" '[ -z "$unknown" ]'
done <<'EOF'
challenger|challenger|challenger.c|challenger,challenger register
discovery-challenger get|discovery-challenger get|discovery_challenger.c|discovery-challenger get
kcrypt|kcrypt|kcrypt.c kcrypt_mboot.c|kcrypt,kcrypt enroll /dev/null,kcrypt unlock /dev/null,kcrypt reseal /dev/null
mdns-responder|mdns-responder|mdns_responder.c|mdns-responder
tpm-hash|tpm-hash|tpm_hash.c|tpm-hash
EOF

done_testing
