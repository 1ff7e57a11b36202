#!/usr/bin/env bash
# Fuzz smoke test: builds every target in fuzz/ once, then runs each for 20 s (FUZZ_SMOKE_SECONDS)
# on a temporary copy of its committed seed corpus, so the corpus in git is never written to.
# A crash fails the script; libFuzzer's reproducer is kept under fuzz/artifacts/<target>/.
# Long runs: see docs/security.md ("Fuzzing").
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${FUZZ_SMOKE_SECONDS:-20}
# The one extra build profile: release with debug assertions, no sanitizer (our code denies
# `unsafe`; panics and overflows are what we hunt) and 16 codegen units (cargo-fuzz's 1 is slow).
FLAGS=(-O -a --sanitizer none --codegen-units 16)

log() { printf '==> %s\n' "$*" >&2; }

if ! cargo +nightly --version >/dev/null 2>&1; then
    log "FAIL: the nightly toolchain is missing; cargo-fuzz needs it (rustup toolchain install nightly)"
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

log "building fuzz targets"
cargo +nightly fuzz build "${FLAGS[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in $(cargo +nightly fuzz list); do
    mkdir -p "$work/$target"
    if [ -d "fuzz/corpus/$target" ]; then cp -r "fuzz/corpus/$target/." "$work/$target/"; fi
    log "fuzzing $target for ${SECS}s"
    if ! cargo +nightly fuzz run "${FLAGS[@]}" "$target" "$work/$target" -- \
        -max_total_time="$SECS" -print_final_stats=1 >"$work/$target.log" 2>&1; then
        tail -n 60 "$work/$target.log" >&2
        log "FAIL: fuzz target $target crashed (reproducer under fuzz/artifacts/$target/)"
        exit 1
    fi
    grep -E '^stat::(number_of_executed_units|new_units_added)' "$work/$target.log" | sed "s/^/    $target /" >&2
done
log "fuzz smoke: all targets ran ${SECS}s without a crash"
