#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for a bounded time (default 60 s each; FUZZ_SECONDS=N).
#
# - With cargo-fuzz installed: `cargo +nightly fuzz run` on a scratch corpus seeded from
#   fuzz/seeds (the committed seeds are never modified).
# - Else with a nightly toolchain: the same build cargo-fuzz makes (sanitizer coverage, libFuzzer
#   from the libfuzzer-sys crate), run directly.
# - Else (stable only): the stable replay of the seeds plus deterministic mutations
#   (tests/inspect.rs `fuzz_seeds_and_mutations_replay`), with more rounds.
# A crash leaves its input in fuzz/artifacts/<target>/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZ_SECONDS:-60}"
targets=(iso el_torito part fat inspect squashfs cpio)
seeds_of() {
  case "$1" in
    inspect) echo "fuzz/seeds/inspect fuzz/seeds/iso" ;;
    *) echo "fuzz/seeds/$1" ;;
  esac
}
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A failing target's newest input, printed so that a CI log alone is enough to reproduce it
# (`base64 -d | gunzip > crash`; libFuzzer picks a new random seed every run), then the script fails.
failed() {
  local newest
  newest="$(ls -t "fuzz/artifacts/$1"/* 2>/dev/null | head -n 1 || true)"
  if [ -n "$newest" ]; then
    echo "fuzz.sh: target $1 failed on $newest (gzip, base64):" >&2
    gzip -9c "$newest" | base64 -w 100 >&2
  fi
  exit 1
}

if cargo +nightly fuzz --version >/dev/null 2>&1; then
  for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    # shellcheck disable=SC2046
    (cd fuzz && cargo +nightly fuzz run "$t" "$work/$t" $(for s in $(seeds_of "$t"); do echo "../$s"; done) \
      -- -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20) || failed "$t"
  done
elif rustup run nightly rustc --version >/dev/null 2>&1; then
  triple="$(rustc -vV | sed -n 's/^host: //p')"
  export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
  # --target keeps the flags off build scripts and proc macros, as cargo-fuzz does.
  (cd fuzz && cargo +nightly build --release --bins --target "$triple")
  for t in "${targets[@]}"; do
    mkdir -p "$work/$t" "fuzz/artifacts/$t"
    # shellcheck disable=SC2046
    "fuzz/target/$triple/release/$t" "$work/$t" $(seeds_of "$t") \
      -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 -artifact_prefix="fuzz/artifacts/$t/" \
      || failed "$t"
  done
else
  echo "fuzz.sh: no nightly toolchain: replaying seeds and deterministic mutations on stable" >&2
  ISOFORGE_FUZZ_REPLAY_ROUNDS="$((secs / 2 + 1))" \
    cargo test -p isoforge-cli --test inspect fuzz_seeds_and_mutations_replay -- --nocapture
fi
