#!/bin/sh
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Fills stderr and stdout far beyond a pipe buffer before reading stdin: a host that does not
# read both concurrently deadlocks here.
head -c 300000 /dev/zero | tr '\0' e >&2
head -c 200000 /dev/zero | tr '\0' ' '
cat >/dev/null
printf '%s' '{"data":"chatty-ok"}'
