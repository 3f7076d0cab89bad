#!/bin/sh
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Exits non-zero with a message on stderr.
cat >/dev/null
echo "boom: disk on fire" >&2
echo "second line" >&2
exit 3
