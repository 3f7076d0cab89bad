#!/bin/sh
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Answers and exits, but leaves a child holding stdout open.
cat >/dev/null
echo $$ >"$KKMS_PLUGIN_PIDFILE"
sleep 1000 &
printf '%s' '{"data":"straggler-ok"}'
