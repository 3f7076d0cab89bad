#!/bin/sh
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# dracut pre-mount hook (sourced by dracut's /init or by dracut-pre-mount.service): opens every
# locked LUKS partition with `kcrypt unlock-all` before root and the Kairos persistent/OEM
# partitions are mounted. pre-mount runs after the initqueue has finished, so with rd.neednet=1 the
# network is up and the KMS can be reached. Kernel command line:
#   rd.kcrypt=0                skip this hook
#   rd.kcrypt.timeout=SECONDS  how long kcrypt keeps retrying one partition (default 120)
#   kcrypt.challenger.*        the Kairos config keys kcrypt itself reads (e.g. challenger_server)
# The output goes to the kernel log and to /run/kairos-kms/unlock.log (it survives switch_root).
type getarg >/dev/null 2>&1 || . /lib/dracut-lib.sh

kairos_kms_unlock() {
    local timeout rc
    getargbool 1 rd.kcrypt || return 0
    [ -e /run/kairos-kms/unlock.done ] && return 0
    mkdir -p /run/kairos-kms
    timeout=$(getarg rd.kcrypt.timeout=)
    if getarg kcrypt.challenger.challenger_server= >/dev/null && ! getargbool 0 rd.neednet; then
        warn "kairos-kms: a KMS is configured but rd.neednet=1 is not set: the network may not be up"
    fi
    info "kairos-kms: kcrypt unlock-all"
    kcrypt unlock-all --timeout "${timeout:-120}" >/run/kairos-kms/unlock.log 2>&1
    rc=$?
    while read -r line; do
        if [ "$rc" -eq 0 ]; then info "kairos-kms: $line"; else warn "kairos-kms: $line"; fi
    done </run/kairos-kms/unlock.log
    echo "$rc" >/run/kairos-kms/unlock.done
    return 0
}

kairos_kms_unlock
