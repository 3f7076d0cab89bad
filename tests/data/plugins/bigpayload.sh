#!/bin/sh
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Expects a payload too large for the event: "data" empty, "file" naming a 0600 file whose
# content equals $KKMS_EXPECT_FILE. Records the file name in $KKMS_PLUGIN_RECORD.
ev=$(cat)
file=$(printf '%s' "$ev" | sed -n 's/.*"file":"\([^"]*\)".*/\1/p')
data=$(printf '%s' "$ev" | sed -n 's/.*"data":"\([^"]*\)".*/\1/p')
[ -n "$file" ] || { echo "no file in the event" >&2; exit 4; }
[ -z "$data" ] || { echo "data is not empty" >&2; exit 5; }
mode=$(stat -c %a "$file")
[ "$mode" = 600 ] || { echo "payload file mode is $mode" >&2; exit 6; }
cmp -s "$file" "$KKMS_EXPECT_FILE" || { echo "payload file content differs" >&2; exit 7; }
printf '%s' "$file" >"$KKMS_PLUGIN_RECORD"
printf '%s' '{"data":"file-ok"}'
