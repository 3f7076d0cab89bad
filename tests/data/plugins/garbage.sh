#!/bin/sh
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Exits 0 but prints something that is not JSON.
cat >/dev/null
echo "this is not json"
echo "garbage plugin complains" >&2
