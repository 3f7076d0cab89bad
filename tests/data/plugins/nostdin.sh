#!/bin/sh
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# Closes stdin without reading it, then answers.
exec 0<&-
printf '%s' '{"data":"answered-without-reading"}'
