/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: the DER walker and X.509 key extraction that read EK certificates from NV. */
#include <stdint.h>
#include <stdlib.h>

#include "crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rsa_pub key;
    if (crypto_x509_rsa_pub(data, size, &key) == 0) {
        uint8_t *der = NULL;
        size_t len;
        if (crypto_rsa_spki_der(&key, &der, &len) == 0)
            free(der);
    }
    return 0;
}
