#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
#
# Usage: third_party/sysroot.sh musl|glibc
#
# Ensures the static dependency sysroot of FLAVOR exists and prints its absolute path,
# the only line on stdout. musl: everything built with musl-gcc, for the fully static
# release binary. glibc: the same pinned sources and recipe built with clang against the
# host glibc, for the dev, ASan/UBSan and libFuzzer builds.
#
#   S=$(third_party/sysroot.sh musl)  && meson setup build-static --cross-file "$S/meson.ini"
#   S=$(third_party/sysroot.sh glibc) && meson setup build --native-file "$S/meson.ini"
#
# Linking: the musl meson.ini sets c_link_args = ['-static'] under [built-in options], so
# the cross build links fully static with no help from meson.build (Debian's musl-gcc
# specs cannot do -static-pie). Passing -Dc_link_args replaces it: keep -static there.
# The sysroot holds only static archives, so every .pc file lists its private
# dependencies as public ones: plain `pkg-config --libs` is a complete link line too.
#
# Sources are the Debian orig tarballs pinned in sources.lock, fetched with apt-get
# source through a private apt configuration (nothing under /etc/apt is touched).
# Cache: ${KAIROS_KMS_CACHE:-/var/cache/kairos-kms}: src/ (tarballs), apt/ (private apt
# state), sysroot-FLAVOR-HASH.tar.gz and its unpacked directory. HASH covers sources.lock,
# this script, recipes.sh (one function per library), patches/ if there is one, the
# compiler and the dpkg versions of libc, kernel headers, compiler and binutils.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${KAIROS_KMS_CACHE:-/var/cache/kairos-kms}
FLAVOR=${1:-}
W="" LOG="" CURRENT=""

log() { printf 'sysroot: %s\n' "$*" >&2; }
die() { printf 'sysroot.sh: error: %s\n' "$*" >&2; exit 1; }
step() { CURRENT=$1; log "building $1 ($((SECONDS - START)) s)"; }

case $FLAVOR in
musl)  TOOLS=(musl-tools musl-dev gcc) KEY_PKGS=(musl-dev linux-libc-dev gcc binutils)
       CFLAGS="-Os -ffunction-sections -fdata-sections" ;;
glibc) TOOLS=(clang libclang-rt-14-dev libc6-dev)
       KEY_PKGS=(libc6-dev linux-libc-dev clang binutils)
       CFLAGS="-O1 -g -fPIC" ;;
*) printf 'usage: %s musl|glibc\n' "$0" >&2; exit 2 ;;
esac
TOOLS+=(cmake meson ninja-build make autoconf automake libtool autoconf-archive libltdl-dev
        pkg-config linux-libc-dev dpkg-dev binutils bzip2 xz-utils util-linux patch)

ensure_tools() {  # apt-get install whatever is missing; update the lists only then
    local installed missing=() p
    installed=" $( { dpkg-query -W -f='${db:Status-Abbrev}|${Package}\n' "${TOOLS[@]}" \
                       2>/dev/null || true; } | awk -F'|' '$1 ~ /^ii/ { printf "%s ", $2 }') "
    for p in "${TOOLS[@]}"; do [[ $installed == *" $p "* ]] || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return
    log "installing ${missing[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}"; } >&2 ||
        die "apt-get install ${missing[*]} failed"
}

cache_key() {
    local compiler
    if [ "$FLAVOR" = musl ]; then compiler=$(musl-gcc -dumpfullversion)
    else compiler=$(clang --version); fi
    { echo "$FLAVOR"; echo "$compiler"
      dpkg-query -W -f='${Package} ${Version}\n' "${KEY_PKGS[@]}"
      cat "$HERE/sources.lock" "$HERE/sysroot.sh" "$HERE/recipes.sh"
      if [ -d "$HERE/patches" ]; then find "$HERE/patches" -type f | sort | xargs -r cat; fi
    } | sha256sum | cut -c1-16
}

read_lock() {     # sources.lock -> VERSION FILE SHA SUITE, indexed by package
    declare -gA VERSION FILE SHA SUITE
    local pkg suite ver file sha
    while read -r pkg suite ver file sha; do
        [[ -z $pkg || $pkg == \#* ]] && continue
        SUITE[$pkg]=$suite VERSION[$pkg]=$ver FILE[$pkg]=$file SHA[$pkg]=$sha
    done < "$HERE/sources.lock"
}

archive_source() {  # prints "URI KEYRING" of the machine's main Debian archive
    local f=/etc/apt/sources.list.d/debian.sources
    if [ -f "$f" ]; then   # deb822: the first stanza whose suites include a plain codename
        awk 'BEGIN { RS = ""; FS = "\n" } {
            uri = ""; key = ""; plain = 0
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^URIs:/) { split($i, a, " "); uri = a[2] }
                if ($i ~ /^Signed-By:/) { split($i, a, " "); key = a[2] }
                if ($i ~ /^Suites:/) { n = split($i, a, " ")
                    for (j = 2; j <= n; j++) if (a[j] !~ /-/) plain = 1 }
            }
            if (uri != "" && plain) { print uri, key; exit }
        }' "$f"
    elif [ -f /etc/apt/sources.list ]; then
        awk '$1 == "deb" { key = ""; if ($2 ~ /^\[/) { for (i = 2; $i !~ /\]$/; i++)
                 if ($i ~ /signed-by=/) key = $i
                 sub(/.*signed-by=/, "", key); sub(/\]$/, "", key); i++ } else i = 2
             if ($(i + 1) !~ /-/) { print $i, key; exit } }' /etc/apt/sources.list
    fi
}

apt_setup() {     # private deb-src configuration in $CACHE/apt, lists refreshed once per build
    local uri key suites
    read -r uri key < <(archive_source) || true
    [ -n "${uri:-}" ] ||
        die "no Debian archive in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
    suites=$(printf '%s\n' "${SUITE[@]}" | sort -u | paste -sd' ')
    mkdir -p "$CACHE/apt/sources" "$CACHE/apt/preferences" "$CACHE/apt/lists/partial" \
        "$CACHE/apt/cache/archives/partial"
    printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
        "$uri" "$suites" "${key:-/usr/share/keyrings/debian-archive-keyring.gpg}" \
        > "$CACHE/apt/sources/kairos-kms-src.sources"
    APT=(apt-get -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$CACHE/apt/sources"
         -o Dir::State::Lists="$CACHE/apt/lists" -o Dir::Cache="$CACHE/apt/cache"
         -o Dir::Etc::Preferences=/dev/null
         -o Dir::Etc::PreferencesParts="$CACHE/apt/preferences"
         -o APT::Sandbox::User=root)
    log "updating the private deb-src lists ($suites)"
    "${APT[@]}" update --error-on=any >>"$LOG" 2>&1 ||
        die "apt-get update of the deb-src lists failed (network?); see $CACHE/build-$FLAVOR.log"
}

fetch() {         # puts the verified orig tarball of $1 into $CACHE/src
    local pkg=$1 f=$CACHE/src/${FILE[$1]} sum
    if [ -f "$f" ] && [ "$(sha256sum < "$f" | cut -d' ' -f1)" = "${SHA[$pkg]}" ]; then return; fi
    [ -n "${APT+x}" ] || apt_setup
    log "downloading ${FILE[$pkg]}"
    rm -rf "$W/dl" && mkdir -p "$W/dl"
    if ! (cd "$W/dl" && "${APT[@]}" source --download-only --tar-only "$pkg=${VERSION[$pkg]}") \
            >>"$LOG" 2>&1; then
        grep -q "Can not find version\|Unable to find a source package" "$LOG" &&
            die "$pkg ${VERSION[$pkg]} is no longer in Debian ${SUITE[$pkg]}:" \
                "sources.lock needs a new pin (see third_party/README.md)"
        die "could not download ${FILE[$pkg]} ($pkg=${VERSION[$pkg]}, network?);" \
            "see $CACHE/build-$FLAVOR.log"
    fi
    [ -f "$W/dl/${FILE[$pkg]}" ] ||
        die "$pkg ${VERSION[$pkg]} no longer has the orig tarball ${FILE[$pkg]}:" \
            "sources.lock needs a new pin"
    sum=$(sha256sum < "$W/dl/${FILE[$pkg]}" | cut -d' ' -f1)
    [ "$sum" = "${SHA[$pkg]}" ] ||
        die "SHA-256 of ${FILE[$pkg]} changed: got $sum, sources.lock pins ${SHA[$pkg]};" \
            "find out why before updating the pin"
    mkdir -p "$CACHE/src" && mv "$W/dl/${FILE[$pkg]}" "$f"
}

unpack() {        # unpack PKG: extract its tarball into $W/src/PKG and cd there
    mkdir -p "$W/src/$1" && cd "$W/src/$1"
    tar -xf "$CACHE/src/${FILE[$1]}" --strip-components=1
}

pc_add_requires() {  # pc_add_requires NAME "PKGS": append to Requires:, drop their -lX, libX.a
    local pc=$STAGE/lib/pkgconfig/$1.pc p
    for p in $2; do sed -i -E "/^Libs/s@ (-l${p#lib}|[^ ]*/lib${p#lib}\.a)\b@@g" "$pc"; done
    grep -q '^Requires:' "$pc" || echo 'Requires:' >> "$pc"
    sed -i "s/^Requires:[[:space:]]*\$/Requires: $2/; t; s/^Requires:.*/&, $2/" "$pc"
}

pc_relocate() {   # prefix relative to the .pc file, private dependencies made public
    local pc
    for pc in "$STAGE"/lib/pkgconfig/*.pc; do
        awk '/^prefix=/ { print "prefix=${pcfiledir}/../.."; next }
            /^[a-z_]+=\/usr(\/|$)/ { sub(/=\/usr/, "=${prefix}") }
            { gsub(/-L\/usr\/lib/, "-L${libdir}"); gsub(/-I\/usr\/include/, "-I${includedir}") }
            /^Requires\.private:/ { sub(/^[^:]*:[ \t]*/, "")
                                    if ($0 != "") rp = rp (rp ? ", " : "") $0; next }
            /^Libs\.private:/ { sub(/^[^:]*:[ \t]*/, ""); if ($0 != "") lp = lp " " $0; next }
            { out[n++] = $0 }
            END { for (i = 0; i < n; i++) { l = out[i]
                    if (l ~ /^Requires:/ && rp != "") {
                        l = l (l ~ /:[ \t]*$/ ? " " : ", ") rp; rp = "" }
                    if (l ~ /^Libs:/ && lp != "") { l = l lp; lp = "" }
                    print l }
                  if (rp != "") print "Requires: " rp
                  if (lp != "") print "Libs:" lp }' "$pc" > "$pc.new" && mv "$pc.new" "$pc"
    done
}

write_generated() {  # write_generated DIR ROOT: bin/cc, bin/pkg-config, meson.ini for ROOT
    local dir=$1 root=$2 cc="clang" static=""
    # Never write outside a sysroot: with an empty DIR, "$dir/bin/pkg-config" would be
    # /bin/pkg-config, a symlink into the host's /usr/bin that cat would follow.
    case $dir:$root in /?*:/?*) ;; *) die "internal: write_generated needs absolute paths ('$dir' '$root')" ;; esac
    [ "$FLAVOR" = musl ] && cc="musl-gcc -isystem $root/include" static=" --static"
    mkdir -p "$dir/bin"
    rm -f "$dir/bin/cc" "$dir/bin/pkg-config" "$dir/meson.ini"   # never write through a link
    cat > "$dir/bin/cc" <<EOF
#!/bin/sh
# Generated by third_party/sysroot.sh: the compiler of this sysroot.
exec $cc "\$@"
EOF
    cat > "$dir/bin/pkg-config" <<EOF
#!/bin/sh
# Generated by third_party/sysroot.sh: pkg-config that sees only this sysroot.
PKG_CONFIG_LIBDIR=$root/lib/pkgconfig
export PKG_CONFIG_LIBDIR
unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
exec $(command -v pkg-config)$static "\$@"
EOF
    chmod 755 "$dir/bin/cc" "$dir/bin/pkg-config"
    if [ "$FLAVOR" = musl ]; then
        cat > "$dir/meson.ini" <<EOF
# Generated by third_party/sysroot.sh: meson --cross-file for the static musl build.
[binaries]
c = '$root/bin/cc'
ar = '$(command -v ar)'
strip = '$(command -v strip)'
pkgconfig = '$root/bin/pkg-config'

[built-in options]
c_link_args = ['-static']

[properties]
needs_exe_wrapper = false

[host_machine]
system = 'linux'
cpu_family = 'x86_64'
cpu = 'x86_64'
endian = 'little'
EOF
    else
        cat > "$dir/meson.ini" <<EOF
# Generated by third_party/sysroot.sh: meson --native-file for the glibc/clang builds.
[binaries]
c = '$(command -v clang)'
ar = '$(command -v ar)'
strip = '$(command -v strip)'
pkgconfig = '$root/bin/pkg-config'
EOF
    fi
}

build() {         # builds the sysroot into $TARBALL
    local lib
    for lib in "${!FILE[@]}"; do fetch "$lib"; done
    export DEST=$W/dest STAGE=$W/dest/usr JOBS
    JOBS=$(nproc)
    mkdir -p "$STAGE/include" "$STAGE/lib/pkgconfig"
    if [ "$FLAVOR" = musl ]; then   # musl-gcc passes -nostdinc: bring the kernel headers
        cp -a /usr/include/linux /usr/include/asm-generic "$STAGE/include/"
        cp -a /usr/include/x86_64-linux-gnu/asm "$STAGE/include/asm"
    fi
    write_generated "$STAGE" "$STAGE"
    export CC=$STAGE/bin/cc PKG_CONFIG=$STAGE/bin/pkg-config CFLAGS CPPFLAGS="-I$STAGE/include" \
           LDFLAGS="-L$STAGE/lib"
    unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR CXXFLAGS MAKEFLAGS
    # shellcheck source=recipes.sh
    . "$HERE/recipes.sh"
    build_all
    CURRENT=packing
    ! grep -rl "$W" "$STAGE/lib/pkgconfig" >&2 || die "a .pc file above names the build directory"
    rm -rf "${STAGE:?}/bin" "$STAGE/meson.ini" "$STAGE/sbin" "$STAGE/share" "$STAGE/lib/cmake"
    find "$STAGE/lib" \( -name '*.so*' -o -name '*.la' \) -delete
    cp "$HERE/sources.lock" "$STAGE/SOURCES.lock"
    tar -C "$STAGE" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - . |
        gzip -n > "$W/sysroot.tar.gz"
    mv "$W/sysroot.tar.gz" "$TARBALL"
}

cleanup() {
    local rc=$?
    if [ $rc -ne 0 ] && [ -n "$LOG" ] && [ -f "$LOG" ]; then
        cp "$LOG" "$CACHE/build-$FLAVOR.log"
        if [ -n "$CURRENT" ]; then
            tail -n 25 "$LOG" >&2
            printf 'sysroot.sh: error: building %s (%s) failed; full log: %s\n' \
                "$CURRENT" "$FLAVOR" "$CACHE/build-$FLAVOR.log" >&2
        fi
    fi
    [ -z "$W" ] || rm -rf "$W"
    exit $rc
}

main() {
    START=$SECONDS
    ensure_tools
    local key dir
    key=$(cache_key)
    dir=$CACHE/sysroot-$FLAVOR-$key TARBALL=$CACHE/sysroot-$FLAVOR-$key.tar.gz
    if [ -d "$dir" ]; then echo "$dir"; return; fi

    mkdir -p "$CACHE" || die "cannot create the cache $CACHE"
    exec 9> "$CACHE/.lock"
    flock -n 9 || { log "waiting for another sysroot.sh to finish"; flock 9; }
    if [ -d "$dir" ]; then echo "$dir"; return; fi
    rm -rf "$CACHE"/.work-*           # left by a killed run: we hold the lock
    W=$(mktemp -d "$CACHE/.work-$FLAVOR.XXXXXX") LOG=$W/build.log
    trap cleanup EXIT
    local how="restored from ${TARBALL##*/}"
    if [ ! -f "$TARBALL" ]; then
        read_lock
        build
        how="built from source"
    fi
    CURRENT=""
    mkdir "$W/root"
    tar -C "$W/root" -xzf "$TARBALL" || die "cannot unpack $TARBALL: delete it and run again"
    write_generated "$W/root" "$dir"
    mv -T "$W/root" "$dir"
    log "$FLAVOR sysroot $how in $((SECONDS - START)) s: $dir"
    echo "$dir"
}

main
