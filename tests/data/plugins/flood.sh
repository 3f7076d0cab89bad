#!/bin/sh
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Prints more than the host keeps (1 MiB) on stdout.
cat >/dev/null
head -c 2000000 /dev/zero | tr '\0' ' '
printf '%s' '{"data":"never-read"}'
