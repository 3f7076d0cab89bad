#!/bin/sh
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Never answers and ignores SIGTERM (so do its children, which inherit the ignore): only
# SIGKILL to the whole process group ends it. Records its pid (= process group) first.
trap '' TERM
echo $$ >"$KKMS_PLUGIN_PIDFILE"
sleep 1000 &
sleep 1000
