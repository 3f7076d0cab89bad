#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
#
# gen-man.sh BINARY OUTDIR: writes one man page (section 8) per applet, and kairos-kms.8, from
# the applets' own --help texts, so the pages never drift from what the binary says.
set -euo pipefail
bin=$1 out=$2
[ -x "$bin" ] || { echo "gen-man.sh: $bin: not an executable" >&2; exit 2; }
mkdir -p "$out"
version=$("$bin" --version | awk '{print $NF}')
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)

# roff_verbatim: the text on stdin as a no-fill block, with roff's special characters escaped.
roff_verbatim() {
    echo ".nf"
    sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/" -e 's/^-/\\-/'
    echo ".fi"
}

# page NAME SUMMARY HELP-COMMAND...
page() {
    local name=$1 summary=$2
    shift 2
    {
        echo ".TH ${name^^} 8 \"$date\" \"kairos-kms $version\" \"Kairos KMS\""
        echo ".SH NAME"
        echo "$name \\- $summary"
        echo ".SH DESCRIPTION"
        "$@" --help | roff_verbatim
        echo ".SH EXIT STATUS"
        echo "0 on success, 1 on a runtime failure, 2 on bad usage."
        echo ".SH SEE ALSO"
        echo "kairos-kms(8), challenger(8), kcrypt(8), discovery-challenger(8), mdns-responder(8), tpm-hash(8)"
    } >"$out/$name.8"
}

page kairos-kms "Kairos TPM-backed disk encryption in one binary" "$bin"
# `kairos-kms --list`: "NAME  summary" lines, then "  also as ALIAS" lines.
"$bin" --list | while read -r name summary; do
    [ "$name" = also ] && continue
    page "$name" "$summary" "$bin" "$name"
done
echo "gen-man.sh: $(ls "$out" | wc -l) pages in $out"
