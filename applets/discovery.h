/* Copyright 2026 The kairos-kms Authors
 * SPDX-License-Identifier: Apache-2.0 */
/* Internal to the discovery-challenger applet: the node sessions are lib/g1's. */
#ifndef KKMS_DISCOVERY_APPLET_H
#define KKMS_DISCOVERY_APPLET_H

#include <stdbool.h>
#include <stdint.h>

#include "base.h"

#include "g1.h"

#endif
