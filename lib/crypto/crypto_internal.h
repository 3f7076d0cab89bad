/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Shared by lib/crypto's files (mbedTLS types stay inside lib/crypto). */
#ifndef KKMS_CRYPTO_INTERNAL_H
#define KKMS_CRYPTO_INTERNAL_H

#include <mbedtls/md.h>

#include "crypto.h"

/* mbedTLS's name for a hash; MBEDTLS_MD_NONE for none we know (sym.c). */
mbedtls_md_type_t crypto_md_type(enum crypto_hash h);

#endif
