# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
#
# Thin wrapper over the real commands; each target installs what it needs (Debian 12, as root).
#   make        the static release binary at build/kairos-kms
#   make check  every test suite: release build, then the unit and TPM suites again under ASan+UBSan
#   make demo   the main job on its embedded default
#   make bench  the benchmarks (they print numbers; nothing is asserted)
#   make install [DESTDIR=...] [PREFIX=/usr]  binary, links, systemd units, initramfs hooks, man pages
#   make fuzz   every libFuzzer harness for FUZZ_SECONDS each, FUZZ_JOBS at a time (FUZZ_TARGETS:
#               only these, e.g. "http ws"); minimizes the corpora in tests/fuzz/corpus/ in place.
#               Its build-fuzz is build-asan's configuration at -O2 (2-3 times the executions).
# Third-party libraries are built once into a sysroot cached by content hash under
# $(KAIROS_KMS_CACHE) (default /var/cache/kairos-kms), outside the checkout.

SHELL := /bin/bash
export KAIROS_KMS_CACHE ?= /var/cache/kairos-kms

BUILD_PKGS := meson ninja-build pkg-config musl-tools file binutils
TEST_PKGS := swtpm swtpm-tools tpm2-tools openssl util-linux coreutils xxd cryptsetup-bin gdisk e2fsprogs \
             python3 python3-cryptography avahi-daemon iproute2 man-db groff-base systemd prometheus etcd-server
VM_PKGS := qemu-system-x86 busybox-static cpio kmod e2fsprogs cryptsetup-bin gdisk swtpm swtpm-tools udev \
           util-linux iproute2 file initramfs-tools
APT := third_party/apt-deps.sh

FUZZ_SECONDS ?= 600
FUZZ_JOBS ?= $(shell nproc)
FUZZ_TARGETS ?=

.PHONY: all check demo bench fuzz clean release asan install man FORCE
PREFIX ?= /usr

all: release

release:
	@$(APT) $(BUILD_PKGS)
	@third_party/meson-setup.sh build musl -Dstatic=true -Dbuildtype=minsize -Db_ndebug=true
	@ninja -C build
	@echo "built: build/kairos-kms ($$(stat -c %s build/kairos-kms) bytes)"

asan:
	@$(APT) $(BUILD_PKGS) clang libclang-rt-14-dev
	@third_party/meson-setup.sh build-asan glibc -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug -Dfuzz=true
	@ninja -C build-asan

check: release asan
	@$(APT) $(TEST_PKGS) $(VM_PKGS)
	@tests/run-suites.sh build build-asan:unit,tpm,luks,kms,net,online,mdns,hostile,fuzz,etcd

demo: release
	@$(APT) $(TEST_PKGS)
	@tests/demo.sh build/kairos-kms

bench: release
	@$(APT) $(TEST_PKGS) hyperfine tang clevis socat curl
	@bench/run.sh build/kairos-kms

man: release
	@dist/man/gen-man.sh build/kairos-kms build/man

install: man
	@DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" dist/install.sh build/kairos-kms build/man

fuzz:
	@$(APT) $(BUILD_PKGS) clang libclang-rt-14-dev
	@third_party/meson-setup.sh build-fuzz glibc -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized -Dfuzz=true
	@ninja -C build-fuzz $$(ninja -C build-fuzz -t targets all | sed -n 's|^\(tests/fuzz/fuzz_[a-z0-9_]*\): .*|\1|p')
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) tests/fuzz/fuzz-long.sh build-fuzz $(FUZZ_TARGETS)

clean:
	rm -rf build build-asan build-fuzz
