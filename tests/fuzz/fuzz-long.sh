#!/bin/bash
# Copyright 2026 The kairos-kms Authors
# SPDX-License-Identifier: Apache-2.0
# fuzz-long.sh BUILDDIR [NAME...]: the long fuzzing run behind `make fuzz` (README.md, Tests).
# Runs every libFuzzer harness BUILDDIR/tests/fuzz/fuzz_NAME (or only the NAMEs given) from its
# corpus tests/fuzz/corpus/NAME for FUZZ_SECONDS (default 600) each, FUZZ_JOBS harnesses at a
# time (default: the number of CPUs); with FUZZ_RUNS=N a harness also stops after N executions.
# Then each corpus is minimized with -merge=1 into a fresh directory and written back to the
# tree: hand-named files (seeds, regression inputs) are always kept, the machine-found ones
# (named by their SHA-1, as libFuzzer writes them) are replaced by the merge's. Crashes,
# timeouts and leaks are saved under BUILDDIR/fuzz/NAME/crashes/. Prints a table per harness
# (executions of this run and of all runs recorded in BUILDDIR/fuzz/ledger, corpus files, cov/ft
# of the final stats line, result); exits 1 if any harness failed.
set -euo pipefail
builddir=$(readlink -f "${1:?usage: fuzz-long.sh BUILDDIR [NAME...]}")
shift
here=$(cd "$(dirname "$0")" && pwd)
seconds=${FUZZ_SECONDS:-600}
jobs=${FUZZ_JOBS:-$(nproc)}
runs=${FUZZ_RUNS:-}
state=$builddir/fuzz
ledger=$state/ledger
max_corpus_kb=2048

if ! [[ $seconds =~ ^[1-9][0-9]*$ && $jobs =~ ^[1-9][0-9]*$ && $runs =~ ^([1-9][0-9]*)?$ ]]; then
    echo "fuzz-long: FUZZ_SECONDS, FUZZ_JOBS and FUZZ_RUNS must be positive integers" >&2
    exit 2
fi
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for h in "$builddir"/tests/fuzz/fuzz_*; do
        [ -x "$h" ] && [ -f "$h" ] && names+=("${h##*/fuzz_}")
    done
fi
if [ ${#names[@]} -eq 0 ]; then
    echo "fuzz-long: no harnesses in $builddir/tests/fuzz (build with make asan)" >&2
    exit 2
fi
for n in "${names[@]}"; do
    if [ ! -x "$builddir/tests/fuzz/fuzz_$n" ]; then
        echo "fuzz-long: $builddir/tests/fuzz/fuzz_$n: no such harness" >&2
        exit 2
    fi
done
mkdir -p "$state"
touch "$ledger"

# One harness: fuzz from the tree's corpus into a scratch corpus, then merge. Everything it says
# goes to $state/NAME/fuzz.log and merge.log; its verdict to $state/NAME/result.
run_one() {
    local n=$1 h=$builddir/tests/fuzz/fuzz_$1 tree=$here/corpus/$1 dir=$state/$1
    local rc=0 f
    rm -rf "$dir/grown" "$dir/fresh" "$dir/result"
    mkdir -p "$dir/grown" "$dir/fresh" "$dir/crashes" "$tree"
    touch "$dir/started"
    # -close_fd_mask=3: the libraries' own error lines stay out of the log (libFuzzer and the
    # sanitizers still report). Crashes, timeouts, leaks and OOMs are written to crashes/.
    (cd "$dir" && "$h" -max_total_time="$seconds" ${runs:+-runs="$runs"} -timeout=10 -rss_limit_mb=2048 -close_fd_mask=3 \
        -print_final_stats=1 -artifact_prefix="$dir/crashes/" "$dir/grown" "$tree") >"$dir/fuzz.log" 2>&1 || rc=$?
    # Minimize: the hand-named files first (always kept), then what adds coverage to them.
    for f in "$tree"/*; do
        [ -f "$f" ] || continue
        [[ ${f##*/} =~ ^[0-9a-f]{40}$ ]] || cp "$f" "$dir/fresh/"
    done
    if (cd "$dir" && "$h" -merge=1 -timeout=10 -rss_limit_mb=2048 -close_fd_mask=3 \
        -artifact_prefix="$dir/crashes/" "$dir/fresh" "$tree" "$dir/grown") >"$dir/merge.log" 2>&1; then
        find "$tree" -maxdepth 1 -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -delete
        for f in "$dir/fresh"/*; do
            [ -f "$f" ] && [[ ${f##*/} =~ ^[0-9a-f]{40}$ ]] && cp "$f" "$tree/"
        done
    else
        echo "merge failed (exit $?), see $dir/merge.log" >>"$dir/fuzz.log"
        [ "$rc" -ne 0 ] || rc=1
    fi
    echo "$rc" >"$dir/result"
}

# A bounded pool: at most $jobs harnesses at a time.
echo "fuzz: ${#names[@]} harnesses, ${seconds}s each, $jobs at a time; logs in $state/NAME/" >&2
running=0
for n in "${names[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    run_one "$n" &
    running=$((running + 1))
done
wait

# The report.
failed=0
printf '%-22s %12s %14s %7s %8s %8s  %s\n' harness executions "all runs" corpus cov ft result
for n in "${names[@]}"; do
    dir=$state/$n log=$state/$n/fuzz.log tree=$here/corpus/$n
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    execs=${execs:-0}
    stats=$(grep -E '^#[0-9]+.*cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)
    cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$stats")
    ft=$(sed -nE 's/.*ft: ([0-9]+).*/\1/p' <<<"$stats")
    printf '%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$n" "$seconds" "$execs" >>"$ledger"
    total=$(awk -F'\t' -v n="$n" '$2 == n { s += $4 } END { printf "%d", s }' "$ledger")
    files=$(find "$tree" -maxdepth 1 -type f | wc -l)
    kb=$(du -sk --apparent-size "$tree" | cut -f1)
    rc=$(cat "$dir/result" 2>/dev/null || echo 1)
    crashes=$(find "$dir/crashes" -maxdepth 1 -type f -newer "$dir/started")
    if [ -n "$crashes" ]; then
        result="FAILED: $(wc -l <<<"$crashes") reproducer(s) in $dir/crashes"
    elif [ "$rc" -ne 0 ]; then
        result="FAILED (exit $rc), see $log"
    else
        result=ok
    fi
    [ "$result" = ok ] || failed=1
    [ "$kb" -le "$max_corpus_kb" ] || result="$result; corpus is ${kb} KB, over ${max_corpus_kb} KB"
    printf '%-22s %12s %14s %7s %8s %8s  %s\n' "fuzz_$n" "$execs" "$total" "$files" "${cov:--}" "${ft:--}" "$result"
    if [ -n "$crashes" ]; then
        sed -nE '/^==[0-9]+==ERROR|^SUMMARY|^artifact_prefix|Test unit written/p' "$log" | head -n 5 | sed 's/^/    /'
    fi
done
exit "$failed"
