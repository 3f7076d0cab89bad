#!/bin/sh
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# A well-behaved plugin: checks the event name, saves its stdin to $KKMS_PLUGIN_DUMP when set,
# answers with a password that needs JSON unescaping.
[ "$1" = discovery.password ] || { echo "unexpected event: $1" >&2; exit 2; }
if [ -n "$KKMS_PLUGIN_DUMP" ]; then cat >"$KKMS_PLUGIN_DUMP"; else cat >/dev/null; fi
printf '%s' '{"state":"","data":"s3cret <&> \u00e9 \"q\"","error":"","log":"good plugin ran"}'
