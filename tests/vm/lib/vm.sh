# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# VM test harness (docs/testing.md §6, §6.2, §6.3): Debian's kernel booted by QEMU with TCG, the
# minimal initramfs of initramfs/minimal with kairos-kms in it, a swtpm TPM per node, our KMS on
# 127.0.0.1 inside a private network namespace, and the guest's only way out a guestfwd to it.
#
# A test file starts with
#   . "$(dirname "$0")/lib/vm.sh"      # fetches the kernel (and dracut-core when VM_WANT_DRACUT=1,
#                                      # into VM_DRACUT), re-execs the test inside `unshare -n`,
#                                      # then sources tests/lib/common.sh, swtpm.sh and kms.sh
# and then uses:
#   vm_setup                       kernel + initramfs (cached), sets VM_KERNEL, VM_INITRD, VM_KV
#   vm_realroot DIR                a busybox real root for dracut/initramfs-tools boots (prints DIR)
#   vm_tpm_new NAME                a node's TPM: a copy of the golden state; prints its directory
#   vm_tpm_run DIR CMD...          runs CMD with $VM_TPM_SOCK = a swtpm server on DIR (host side)
#   vm_disk IMG PART...            a GPT disk image; PART = SIZE_MIB:PARTLABEL:KIND[:ARG...]
#                                  ext4:FSLABEL[:CONTENT_DIR[:FS_MIB]]  a filesystem (smaller than
#                                  the partition when FS_MIB is given)
#                                  luks:LUKSLABEL:PASSFILE[:CONTENT_DIR]  LUKS2 (PBKDF2, 1000
#                                  iterations) with an ext4 inside, made by cryptsetup reencrypt
#   vm_part IMG N OUT              copies partition N of IMG to OUT (host-side checks)
#   vm_boot NAME [OPTIONS]         one boot; options: --tpm DIR, --disk IMG (repeatable, vda, vdb..),
#                                  --kms-port P (network + guestfwd 10.0.2.100:P -> 127.0.0.1:P),
#                                  --append ARGS, --script FILE (the guest's /kkms-test.sh),
#                                  --file SRC:DEST (more files in the guest), --timeout S,
#                                  --initrd FILE (instead of the minimal one),
#                                  --serial-answer PATTERN:FILE (each time PATTERN appears on the
#                                  console, type FILE's first line and Enter on the serial port)
#                                  The console is $T/NAME.console; VM_SECS holds the wall time.
#   vm_mark NAME KEY               the last "@@KKMS KEY=VALUE" of boot NAME
#   vm_console NAME                the console of boot NAME with CRs removed
# Environment: KAIROS_KMS (the binary), KAIROS_KMS_CACHE (default /var/cache/kairos-kms),
# KKMS_VM_TIMEOUT (seconds per boot, default 120), KKMS_VM_MEM (MiB, default 512).

if [ "${KKMS_VM_NETNS_DONE:-}" != 1 ]; then
    # The kernel is fetched here, where the mirror can still be reached.
    command -v unshare >/dev/null || { echo "Bail out! unshare is missing (apt-get install util-linux)"; exit 1; }
    VM_KROOT=$("$(dirname "${BASH_SOURCE[0]}")/kernel.sh" "${KAIROS_KMS_CACHE:-/var/cache/kairos-kms}/vm") || VM_KROOT=''
    VM_DRACUT=''
    if [ "${VM_WANT_DRACUT:-}" = 1 ]; then
        VM_DRACUT=$("$(dirname "${BASH_SOURCE[0]}")/dracut.sh" "${KAIROS_KMS_CACHE:-/var/cache/kairos-kms}/vm") || VM_DRACUT=''
    fi
    export VM_KROOT VM_DRACUT KKMS_VM_NETNS_DONE=1
    exec unshare -n bash "$0" "$@"
fi
ip link set lo up 2>/dev/null || { echo "Bail out! cannot bring up lo in the private network namespace"; exit 1; }

_vm_lib=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
_vm_src=$(cd "$_vm_lib/../../.." && pwd)
. "$_vm_src/tests/lib/common.sh"
. "$_vm_src/tests/lib/swtpm.sh"
. "$_vm_src/tests/lib/kms.sh"
require qemu-system-x86_64 busybox cpio gzip depmod mke2fs sgdisk cryptsetup apt-get dpkg flock timeout
VM_CACHE=${KAIROS_KMS_CACHE:-/var/cache/kairos-kms}/vm
VM_TIMEOUT=${KKMS_VM_TIMEOUT:-120}
VM_MEM=${KKMS_VM_MEM:-512}
_vm_t0=$(date +%s.%N)
_vm_pids=()

vm_elapsed() { echo "$(date +%s.%N) $1" | awk '{printf "%.1f", $1 - $2}'; }

vm_setup() {
    [ -n "$VM_KROOT" ] || bail "no Debian kernel (tests/vm/lib/kernel.sh failed; see above)"
    VM_KV=$(ls "$VM_KROOT/lib/modules")
    VM_KERNEL=$VM_KROOT/boot/vmlinuz-$VM_KV
    VM_INITRD=$("$_vm_src/initramfs/minimal/mkinitrd.sh" --kairos-kms "$KAIROS_KMS" --kernel-root "$VM_KROOT" \
        --cache "$VM_CACHE") || bail "initramfs/minimal/mkinitrd.sh failed"
    echo "# kernel $VM_KV, initramfs $(basename "$VM_INITRD") ($(stat -c %s "$VM_INITRD") bytes)"
}

# vm_realroot DIR: a real root filesystem tree for initramfs generators' boots (dracut,
# initramfs-tools): a static busybox and an /sbin/init that reports what the initramfs hook left
# in /run/kairos-kms (`[hook] ...` lines, hook.rc), whether /dev/mapper/vdb1 survived the switch
# (mapper=1), the file MARKER on it (`[cat] ...`), then powers off. Prints DIR.
vm_realroot() {
    local root=$1
    mkdir -p "$root"/{bin,sbin,proc,sys,dev,run,mnt,tmp}
    cp "$(command -v busybox)" "$root/bin/busybox"
    ln -sf busybox "$root/bin/sh"
    cat >"$root/sbin/init" <<'G'
#!/bin/busybox sh
B=/bin/busybox
echo  # quiet boots leave the firmware's last line open on the console
echo "@@KKMS realroot.at=$($B cut -d' ' -f1 /proc/uptime)"
if [ -f /run/kairos-kms/unlock.log ]; then
    $B sed 's/^/[hook] /' /run/kairos-kms/unlock.log
    echo "@@KKMS hook.rc=$($B cat /run/kairos-kms/unlock.done)"
fi
[ -b /dev/mapper/vdb1 ] && echo "@@KKMS mapper=1"
$B mount -t ext4 -o ro /dev/mapper/vdb1 /mnt && echo "[cat] $($B cat /mnt/MARKER)" && $B umount /mnt
echo "@@KKMS end=1"
$B sync
$B poweroff -f
G
    chmod 755 "$root/sbin/init"
    echo "$root"
}

vm_tpm_new() {
    local d
    d=$(mktemp -d "$T/$1-tpm.XXXXXX")
    cp -a "$(golden_state vm-node ekcert)/state/." "$d/"
    echo "$d"
}

# vm_tpm_run DIR CMD...: swtpm (server socket) on DIR while CMD runs; the state is saved after.
vm_tpm_run() {
    local dir=$1 pid i rc
    shift
    VM_TPM_SOCK=$dir/host.sock
    swtpm socket --tpm2 --tpmstate dir="$dir" --server type=unixio,path="$VM_TPM_SOCK" \
        --ctrl type=unixio,path="$VM_TPM_SOCK.ctrl" --flags not-need-init,startup-clear \
        --log file="$dir/host-swtpm.log",level=1 &
    pid=$!
    for i in $(seq 500); do [ -S "$VM_TPM_SOCK.ctrl" ] && break; sleep 0.01; done
    "$@"
    rc=$?
    swtpm_stop "$pid" "$VM_TPM_SOCK"
    rm -f "$VM_TPM_SOCK" "$VM_TPM_SOCK.ctrl"
    return $rc
}

vm_tpm_hash() { vm_tpm_run "$1" bash -c 'timeout 60 "$KAIROS_KMS" tpm-hash --tpm-device "$0"' "$1/host.sock"; }

# A filesystem image of fs_mib MiB labelled label, with content when given.
_vm_ext4() {
    local img=$1 mib=$2 label=$3 content=${4:-}
    rm -f "$img"
    if [ -n "$content" ]; then
        mkfs.ext4 -q -F -L "$label" -d "$content" "$img" "${mib}M" >/dev/null 2>&1 || return 1
    else
        mkfs.ext4 -q -F -L "$label" "$img" "${mib}M" >/dev/null 2>&1 || return 1
    fi
}

vm_disk() {
    local img=$1 total=2 n=0 spec size plabel kind a b c start=1 part
    shift
    for spec in "$@"; do total=$((total + ${spec%%:*})); done
    rm -f "$img"
    truncate -s "${total}M" "$img"
    sgdisk -o "$img" >/dev/null || return 1
    for spec in "$@"; do
        n=$((n + 1))
        IFS=: read -r size plabel kind a b c <<<"$spec"
        sgdisk -n "$n:$((start * 2048)):$(((start + size) * 2048 - 1))" -c "$n:$plabel" "$img" >/dev/null ||
            { echo "vm_disk: sgdisk could not add partition $n to $img" >&2; return 1; }
        part=$img.p$n
        case $kind in
        ext4) _vm_ext4 "$part" "${c:-$size}" "$a" "$b" || return 1 ;;
        luks)
            # docs/testing.md §6.4: an ext4 smaller than the partition, encrypted in place (the
            # header goes where the 32 MiB of room are); PBKDF2 so the guest opens it in 0.3 s.
            [ "$size" -ge 48 ] || { echo "vm_disk: a luks partition needs 48 MiB or more" >&2; return 1; }
            _vm_ext4 "$part" $((size - 32)) "$a" "$c" || return 1
            truncate -s "${size}M" "$part"
            cryptsetup reencrypt --batch-mode --encrypt --type luks2 --label "$a" --reduce-device-size 32M \
                --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$b" "$part" >/dev/null || return 1 ;;
        *) echo "vm_disk: unknown kind $kind" >&2; return 1 ;;
        esac
        dd if="$part" of="$img" bs=1M seek="$start" conv=notrunc,sparse status=none || return 1
        rm -f "$part"
        start=$((start + size))
    done
}

# vm_part IMG N OUT: partition N of IMG as a file.
vm_part() {
    local first last
    read -r first last < <(sgdisk -i "$2" "$1" | awk '/First sector/{f=$3} /Last sector/{l=$3} END{print f, l}')
    dd if="$1" of="$3" bs=512 skip="$first" count=$((last - first + 1)) status=none
}

_vm_kill() { kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null; return 0; }

# _vm_answer CONSOLE PATTERN FILE FIFO QEMU_PID: types FILE's first line + CR into FIFO each time
# one more PATTERN shows on CONSOLE, while QEMU runs (polled every 0.2 s; bounded by QEMU's life).
_vm_answer() {
    local cons=$1 pat=$2 file=$3 fifo=$4 qpid=$5 done=0 n
    while kill -0 "$qpid" 2>/dev/null; do
        n=$(grep -c -- "$pat" "$cons" 2>/dev/null)
        if [ "${n:-0}" -gt "$done" ]; then
            sleep 0.5 # the guest has switched echo off and waits
            printf '%s\r' "$(head -1 "$file")" >"$fifo"
            done=$((done + 1))
        fi
        sleep 0.2
    done
}

vm_boot() {
    local name=$1 tpm='' disks=() port='' append='' script='' files=() timeout=$VM_TIMEOUT initrd=$VM_INITRD
    local answer='' apid='' cpid=
    local t0 qpid spid rc i d sock cons=$T/$1.console extra
    shift
    while [ $# -gt 0 ]; do
        case $1 in
        --tpm) tpm=$2 ;;
        --disk) disks+=("$2") ;;
        --kms-port) port=$2 ;;
        --append) append=$2 ;;
        --script) script=$2 ;;
        --file) files+=("$2") ;;
        --timeout) timeout=$2 ;;
        --initrd) initrd=$2 ;;
        --serial-answer) answer=$2 ;;
        *) bail "vm_boot: unknown option $1" ;;
        esac
        shift 2
    done
    # The test's own files, in a second cpio the kernel unpacks over the first.
    extra=$T/$name.extra
    rm -rf "$extra"; mkdir -p "$extra"
    [ -n "$script" ] && cp "$script" "$extra/kkms-test.sh"
    for i in "${files[@]}"; do mkdir -p "$extra/$(dirname "${i#*:}")"; cp "${i%%:*}" "$extra/${i#*:}"; done
    (cd "$extra" && find . -mindepth 1 | cpio -o -H newc -R 0:0 --quiet | gzip -1) >"$T/$name.extra.cpio.gz"
    cat "$initrd" "$T/$name.extra.cpio.gz" >"$T/$name.initrd"

    local args=(-accel tcg -m "$VM_MEM" -smp 1 -nographic -monitor none -no-reboot
        -kernel "$VM_KERNEL" -initrd "$T/$name.initrd")
    if [ -n "$answer" ]; then # a serial port we can type into: QEMU's pipe chardev (FIFOs .in/.out)
        rm -f "$T/$name.ser.in" "$T/$name.ser.out"
        mkfifo "$T/$name.ser.in" "$T/$name.ser.out"
        args+=(-chardev "pipe,id=ser0,path=$T/$name.ser" -serial chardev:ser0)
    else
        args+=(-serial "file:$cons")
    fi
    local letters=abcdefgh wait='' n=0 k
    for d in "${disks[@]}"; do
        args+=(-drive "file=$d,if=virtio,format=raw,cache=unsafe")
        k=$(sgdisk -p "$d" 2>/dev/null | grep -cE '^ +[0-9]+ ')
        wait+=",vd${letters:n:1}"
        for ((i = 1; i <= k; i++)); do wait+=",vd${letters:n:1}$i"; done
        n=$((n + 1))
    done
    [ -n "$wait" ] && append+=" kkms.wait=${wait#,}"
    args+=(-append "console=ttyS0 quiet panic=-1 $append${port:+ kkms.net=1}")
    if [ -n "$port" ]; then
        args+=(-netdev "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:$port-cmd:busybox nc 127.0.0.1 $port"
            -device virtio-net-pci,netdev=n0,romfile=)
    else
        args+=(-nic none)
    fi
    if [ -n "$tpm" ]; then
        # docs/testing.md §6.3: QEMU's chardev flavour (ctrl channel only, QEMU passes the data fd).
        sock=$tpm/qemu.sock
        rm -f "$sock"
        swtpm socket --tpm2 --tpmstate dir="$tpm" --ctrl type=unixio,path="$sock" --flags startup-clear \
            --log file="$T/$name.swtpm.log",level=1 &
        spid=$!
        on_exit "_vm_kill $spid"
        for i in $(seq 500); do [ -S "$sock" ] && break; sleep 0.01; done
        args+=(-chardev "socket,id=chrtpm,path=$sock" -tpmdev emulator,id=tpm0,chardev=chrtpm
            -device tpm-tis,tpmdev=tpm0)
    fi
    : >"$cons"
    t0=$(date +%s.%N)
    timeout -k 5 "$timeout" qemu-system-x86_64 "${args[@]}" </dev/null >"$T/$name.qemu.log" 2>&1 &
    qpid=$!
    on_exit "_vm_kill $qpid"
    if [ -n "$answer" ]; then
        timeout -k 5 "$timeout" cat "$T/$name.ser.out" >"$cons" &
        cpid=$!
        on_exit "_vm_kill $cpid"
        _vm_answer "$cons" "${answer%%:*}" "${answer#*:}" "$T/$name.ser.in" "$qpid" &
        apid=$!
        on_exit "_vm_kill $apid"
    fi
    wait "$qpid"
    rc=$?
    if [ -n "$answer" ]; then
        _vm_kill "$apid"
        for i in $(seq 50); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
        _vm_kill "$cpid"
    fi
    VM_SECS=$(vm_elapsed "$t0")
    if [ -n "$tpm" ]; then
        # QEMU is gone; swtpm has written its state after every command. Stop it for the next boot.
        kill "$spid" 2>/dev/null
        for i in $(seq 50); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
        _vm_kill "$spid"
    fi
    tr -d '\r' <"$cons" >"$cons.txt"
    echo "# boot $name: ${VM_SECS} s (QEMU wall, limit ${timeout} s), qemu exit $rc"
    [ "$rc" = 124 ] && echo "# boot $name: QEMU killed at the time limit"
    if ! grep -q '^@@KKMS end=1' "$cons.txt"; then
        echo "# boot $name did not finish; last console lines:"
        tail -25 "$cons.txt" | diag
        tail -5 "$T/$name.qemu.log" | diag
    fi
    return 0
}

vm_console() { cat "$T/$1.console.txt"; }
vm_mark() { sed -n "s/^@@KKMS $2=//p" "$T/$1.console.txt" | tail -1; }
# vm_lines NAME PREFIX: the output lines of guest command PREFIX (run PREFIX ... in the guest).
vm_lines() { sed -n "s/^\[$2\] //p" "$T/$1.console.txt"; }
vm_errs() { sed -n "s/^\[$2!\] //p" "$T/$1.console.txt"; }
vm_show() { echo "# --- console of boot $1 (guest commands) ---"; grep -E '^(@@KKMS|\[)' "$T/$1.console.txt" | diag; }

vm_done() {
    echo "# test wall time: $(vm_elapsed "$_vm_t0") s"
    done_testing
}
