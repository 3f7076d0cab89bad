#!/bin/sh
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Answers with an error, as upstream plugins do when the KMS has no key.
cat >/dev/null
printf '%s' '{"state":"","data":"","error":"no secret for \"COS_PERSISTENT\"\nsecond line","log":""}'
