#!/usr/bin/env python3
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
"""luks_decrypt.py IMAGE VOLUME_KEY_HEX OFFSET SECTOR_SIZE OUT [LIMIT]

Independent check of an encrypted LUKS2 image without device-mapper: decrypts the data segment
(aes-xts-plain64) with the volume key that Debian's `cryptsetup luksDump --dump-volume-key`
printed, and writes the plaintext to OUT. plain64 counts 512-byte sectors from the start of the
segment, whatever the encryption sector size (LUKS2 never sets iv_large_sectors), so a 4096-byte
sector n has the tweak 8*n."""
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def main():
    image, key_hex, offset, sector, out = sys.argv[1:6]
    limit = int(sys.argv[6]) if len(sys.argv) > 6 else None
    key = bytes.fromhex(key_hex.replace(" ", "").replace(":", ""))
    offset, sector = int(offset), int(sector)
    with open(image, "rb") as f, open(out, "wb") as o:
        f.seek(offset)
        n = 0
        while limit is None or n * sector < limit:
            block = f.read(sector)
            if len(block) < sector:
                break
            tweak = (n * (sector // 512)).to_bytes(16, "little")
            d = Cipher(algorithms.AES(key), modes.XTS(tweak)).decryptor()
            o.write(d.update(block) + d.finalize())
            n += 1


if __name__ == "__main__":
    main()
