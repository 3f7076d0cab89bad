#!/bin/sh
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Mixed-case keys, unknown keys and a null, which Go's decoder accepts.
cat >/dev/null
printf '%s' '{"STATE":"st","Data":"MixedCase","extra":{"nested":[1,2,null]},"Error":null,"LOG":"l"}'
