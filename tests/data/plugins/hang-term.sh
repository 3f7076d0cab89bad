#!/bin/sh
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Never answers but dies on SIGTERM like most programs.
echo $$ >"$KKMS_PLUGIN_PIDFILE"
exec sleep 1000
