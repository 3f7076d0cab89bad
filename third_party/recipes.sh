# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# One function per library: how each pinned source is built into the sysroot.
# Sourced by third_party/sysroot.sh, which sets:
#   W       scratch dir (removed afterwards)      DEST   DESTDIR of every install
#   STAGE   $DEST/usr, the sysroot being built    JOBS   parallel jobs
#   CC CFLAGS CPPFLAGS LDFLAGS PKG_CONFIG   the toolchain (exported)
#   FLAVOR  musl | glibc
# and provides unpack PKG (extracts the orig tarball, cd's into it).
# Everything is configured for /usr and installed with DESTDIR, so paths compiled
# into the libraries (/etc/blkid.conf, /run/cryptsetup, ...) are the real ones.
# The order of build_all is the dependency order.

cmake_install() {   # cmake_install CMAKE-ARGS...: configure, build and install the cwd
    cmake -S . -B _build -G Ninja -DCMAKE_BUILD_TYPE=None \
        -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_LIBDIR=lib \
        -DCMAKE_C_COMPILER="$CC" -DCMAKE_C_FLAGS="$CFLAGS" \
        -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_PREFIX_PATH="$STAGE" "$@"
    ninja -C _build -j "$JOBS"
    DESTDIR="$DEST" ninja -C _build install
}

configure_host() {  # ./configure with the common arguments plus "$@"
    ./configure --prefix=/usr --libdir=/usr/lib --sysconfdir=/etc --localstatedir=/var \
        --enable-static --disable-shared "$@"
}

build_mbedtls() {
    unpack mbedtls
    # The default config has what we use (SHA, HMAC, AES-XTS/CFB, PKCS5, RSA, ECDH) but no
    # threading layer, and two threads do use mbedTLS at once: the etcd store's watch thread and
    # the event loop (both TLS to etcd over https, and the loop also TLS to nodes), kms-loadgen's
    # --threads. MBEDTLS_THREADING_C + _PTHREAD put mutexes around the shared state (the PSA random
    # generator and key slots).
    local opt
    for opt in MBEDTLS_THREADING_C MBEDTLS_THREADING_PTHREAD; do
        if ! grep -q "^//#define $opt\$" include/mbedtls/mbedtls_config.h; then
            echo "mbedtls: $opt is not where it used to be in mbedtls_config.h; review the config" >&2
            return 1
        fi
        sed -i "s|^//#define $opt\$|#define $opt|" include/mbedtls/mbedtls_config.h
    done
    # Our own patch (its header says why): public-exponent exponentiation without multiplications by 1.
    patch -p1 --forward --batch < "$HERE/patches/mbedtls-exp-mod-public-skip-zero-window.patch"
    # MBEDTLS_HAVE_ASM is on by default: bignum uses bn_mul.h's x86_64 multiply-accumulate.
    if ! grep -q '^#define MBEDTLS_HAVE_ASM' include/mbedtls/mbedtls_config.h; then
        echo "mbedtls: MBEDTLS_HAVE_ASM is off by default now; review the config" >&2
        return 1
    fi
    # The KMS spends most of its CPU in RSA public-key operations and SHA-256: mbedTLS is
    # built at -O2 (about 10 kB more) while everything else stays at -Os.
    local CFLAGS=${CFLAGS//-Os/-O2}
    cmake_install -DENABLE_TESTING=OFF -DENABLE_PROGRAMS=OFF -DGEN_FILES=OFF \
        -DUSE_SHARED_MBEDTLS_LIBRARY=OFF -DUSE_STATIC_MBEDTLS_LIBRARY=ON
}

build_libyaml() {
    unpack libyaml
    cmake_install -DBUILD_SHARED_LIBS=OFF -DBUILD_TESTING=OFF -DINSTALL_LIB_DIR=lib \
        -DINSTALL_INCLUDE_DIR=include -DINSTALL_CMAKE_DIR=lib/cmake/yaml
    # Upstream's CMake build installs no .pc file.
    cat > "$STAGE/lib/pkgconfig/yaml-0.1.pc" <<EOF
prefix=/usr
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: LibYAML
Description: Library to parse and emit YAML
Version: ${VERSION[libyaml]%%-*}
Libs: -L\${libdir} -lyaml
Cflags: -I\${includedir}
EOF
}

build_jsmn() {      # header only
    unpack jsmn
    install -D -m 644 jsmn.h "$STAGE/include/jsmn.h"
    cat > "$STAGE/lib/pkgconfig/jsmn.pc" <<EOF
prefix=/usr
includedir=\${prefix}/include

Name: jsmn
Description: Minimalistic JSON tokenizer (header only)
Version: ${VERSION[jsmn]%%-*}
Cflags: -I\${includedir}
EOF
}

build_json_c() {
    unpack json-c
    cmake_install -DBUILD_SHARED_LIBS=OFF -DBUILD_STATIC_LIBS=ON -DBUILD_TESTING=OFF \
        -DBUILD_APPS=OFF -DDISABLE_WERROR=ON -DDISABLE_EXTRA_LIBS=ON -DENABLE_THREADING=OFF
}

build_util_linux() {  # libuuid and libblkid only
    unpack util-linux
    local w
    for w in udev systemd python econf tinfo ncursesw readline cap-ng libz libmagic btrfs \
             selinux audit; do set -- "$@" "--without-$w"; done
    configure_host --runstatedir=/run --disable-all-programs --enable-libuuid \
        --enable-libblkid --disable-nls --disable-asciidoc --disable-poman \
        --disable-bash-completion --disable-liblastlog2 "$@"
    make -j "$JOBS"
    make install DESTDIR="$DEST"
}

build_lvm2() {       # libdevmapper only
    unpack lvm2
    # No symbol versions: they only matter for the shared library we do not ship.
    configure_host --with-optimisation="" --with-symvers=no --enable-static_link \
        --enable-pkgconfig --disable-selinux --disable-readline --disable-nls --disable-udev_sync \
        --disable-udev_rules --disable-blkid_wiping --disable-systemd-journal \
        --disable-app-machineid --disable-sd-notify --disable-nvme-wwid \
        --disable-dmeventd --disable-cmdlib --disable-use-lvmlockd --disable-use-lvmpolld \
        --with-thin=none --with-cache=none --with-vdo=none --with-writecache=none \
        --with-integrity=none
    make -j "$JOBS" device-mapper
    make install_device-mapper DESTDIR="$DEST"
}

build_popt() {       # only because cryptsetup's meson.build insists on it
    unpack popt
    configure_host --disable-nls
    make -j "$JOBS" -C src
    make -C src install DESTDIR="$DEST"
    make install-pkgconfigDATA DESTDIR="$DEST"
}

build_tpm2_tss() {
    unpack tpm2-tss
    # Our own patch (its header says why): the ECDH secret of an ECC-salted session padded as the TPM pads it.
    patch -p1 --forward --batch < "$HERE/patches/tpm2-tss-ecdh-z-padded.patch"
    # The orig tarball is a git export without configure: bootstrap it, minus git.
    echo "${VERSION[tpm2-tss]%%-*}" > VERSION
    sed -i '/git describe/d' bootstrap
    ./bootstrap
    local t
    for t in cmd pcap libtpms spi-helper spi-ltt2go spidev spi-ftdi i2c-helper i2c-ftdi \
             fuzzing; do set -- "$@" "--disable-tcti-$t"; done
    configure_host --with-crypto=mbed --enable-nodl --disable-fapi --disable-policy \
        --disable-doxygen-doc --disable-unit --disable-integration --disable-defaultflags \
        --disable-log-file --with-maxloglevel=error --enable-tcti-device \
        --enable-tcti-swtpm --enable-tcti-mssim "$@"
    make -j "$JOBS"
    # Plain 'make install' would also create a 'tss' user on this machine.
    make install-libLTLIBRARIES install-tss2HEADERS install-pkgconfigDATA DESTDIR="$DEST"
    # Every TCTI defines Tss2_Tcti_Info (fixed upstream after 4.1.3): two TCTIs in one
    # static link would collide.
    for t in device swtpm mssim; do
        objcopy --localize-symbol=Tss2_Tcti_Info "$STAGE/lib/libtss2-tcti-$t.a"
    done
    # With --enable-nodl the loader built into esys (and tctildr) calls the three TCTIs
    # directly, and esys calls mbedcrypto: say so, so pkg-config links them.
    local tctis="tss2-tcti-device tss2-tcti-swtpm tss2-tcti-mssim"
    pc_add_requires tss2-esys "$tctis mbedcrypto"
    pc_add_requires tss2-tctildr "$tctis tss2-mu"
}

build_cryptsetup() {  # libcryptsetup only, with its own mbedTLS backend (new in 2.8)
    unpack cryptsetup
    local f mode=--native-file
    [ "$FLAVOR" = musl ] && mode=--cross-file
    set --
    for f in cryptsetup veritysetup integritysetup ssh-token external-tokens nls udev \
             pwquality passwdqc fips hw-opal; do set -- "$@" "-D$f=false"; done
    # find_library('mbedcrypto') searches only the compiler's own directories (clang
    # ignores LIBRARY_PATH) and records an absolute path: ask pkg-config instead.
    sed -i "s/cc.find_library('mbedcrypto',/dependency('mbedcrypto',/" meson.build
    grep -q "dependency('mbedcrypto'," meson.build
    meson setup _build "$mode" "$STAGE/meson.ini" --prefix=/usr --libdir=lib \
        --buildtype=plain -Dc_args="$CPPFLAGS $CFLAGS" -Dc_link_args="$LDFLAGS" \
        -Denable-static=true -Dcrypto-backend=mbedtls -Dargon-implementation=internal \
        -Dasciidoc=disabled "$@"
    ninja -C _build -j "$JOBS" lib/libcryptsetup.a
    meson install -C _build --no-rebuild --tags devel --destdir "$DEST"
}

build_all() {
    local lib
    for lib in mbedtls libyaml jsmn json-c util-linux lvm2 popt tpm2-tss cryptsetup; do
        step "$lib ${VERSION[$lib]}"
        ( "build_${lib//-/_}" ) >>"$LOG" 2>&1
        pc_relocate
    done
}
