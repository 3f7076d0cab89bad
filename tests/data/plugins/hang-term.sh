#!/bin/sh
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Never answers but dies on SIGTERM like most programs; says why it is waiting on stderr.
echo $$ >"$KKMS_PLUGIN_PIDFILE"
echo "starting" >&2
echo "attempt 1 failed: connection refused; retrying" >&2
exec sleep 1000
