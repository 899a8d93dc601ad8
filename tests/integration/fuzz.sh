#!/bin/sh
# Runs each libFuzzer target of this build for CMPR_FUZZ_SECONDS (default 30)
# from a seed corpus of real messages. Builds without fuzzers count nothing.
. "$TOP/tests/integration/lib.sh"
secs=${CMPR_FUZZ_SECONDS:-30}
corpus=$TMP/corpus
mkdir -p "$corpus"
cp "$TOP"/tests/data/openssl/*.der "$corpus"/
for f in "$TOP"/tests/data/lightweightcmpra/*/*.PKI; do
	[ -f "$f" ] && cp "$f" "$corpus/$(basename "$(dirname "$f")")_$(basename "$f")"
done
for fz in "$BUILD"/tests/fuzz/fuzz_*; do
	[ -x "$fz" ] || continue
	case $fz in *.o) continue ;; esac
	name=$(basename "$fz")
	if "$fz" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 \
			-artifact_prefix="$TMP/" "$corpus" >"$TMP/$name.log" 2>&1; then
		ok "$name runs ${secs}s clean ($(grep -o 'Done [0-9]* runs' "$TMP/$name.log"))"
	else
		not_ok "$name found a crash"
		tail -40 "$TMP/$name.log" >&2
		for a in "$TMP"/crash-* "$TMP"/leak-* "$TMP"/timeout-*; do
			[ -f "$a" ] && { echo "artifact $a:" >&2; od -An -tx1 "$a" | head -20 >&2; }
		done
	fi
done
