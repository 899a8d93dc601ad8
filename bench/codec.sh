#!/bin/sh
# Codec throughput against OpenSSL's own CMP decoder and validator, measured
# side by side in one process; report the ratio column.
#   bench/codec.sh [SECONDS_PER_CASE]     (default 2; builds build/gcc first)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/build" gcc >/dev/null
cd "$top"
exec build/gcc/bench/codec_bench tests/data/openssl "${1:-2}"
