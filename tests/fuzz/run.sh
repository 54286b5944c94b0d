#!/bin/sh
# Builds and runs every libFuzzer target tests/fuzz/fuzz_*.c for SECONDS
# each (default 60), one after the other.
#
#   sh tests/fuzz/run.sh [SECONDS]
#   FUZZ_TARGETS="addr proxy" sh tests/fuzz/run.sh 600   (only those)
#
# Each target names the sources it links with in a comment line
#   /* fuzz-sources: src/mail/addr.c src/lib/err.c */
# and, when it needs libraries, another one
#   /* fuzz-libs: -lcrypt */
# Its seeds are in tests/fuzz/corpus/NAME/ (NAME = file name without
# "fuzz_" and ".c"; corpus/fuzz_NAME/ is accepted too). They are copied to
# build/fuzz/NAME/corpus, which the fuzzer grows, so that the seeds in git
# stay small. A crash leaves its input in build/fuzz/NAME/ (crash-*, leak-*,
# timeout-*); rerun it with build/fuzz/NAME/fuzz_NAME FILE.
#
# Prints one "ok - fuzz NAME (N runs)" or "not ok - fuzz NAME" line per
# target, then "N passed, N failed"; exits 1 when any target failed to
# build or found a crash.
set -u
cd "$(dirname "$0")/../.." || exit 1

seconds=${1:-60}
case $seconds in
''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
CLANG=${CLANG:-clang}
out=build/fuzz
mkdir -p "$out" || exit 1
pkg_cflags=$(pkg-config --cflags libevent openssl libcares 2>/dev/null)
passed=0 failed=0

# The words after "tag:" on the target's comment line, without "*/".
directive() {	# tag, file
	sed -n "s|.*$1:[[:space:]]*\\(.*\\)|\\1|p" "$2" | head -n 1 |
	    sed 's|\*/.*||'
}

for src in tests/fuzz/fuzz_*.c; do
	[ -f "$src" ] || continue
	# FUZZ_TARGETS="addr proxy" runs only those.
	if [ -n "${FUZZ_TARGETS:-}" ]; then
		t=$(basename "$src" .c); t=${t#fuzz_}
		case " $FUZZ_TARGETS " in *" $t "*) ;; *) continue ;; esac
	fi
	name=$(basename "$src" .c)
	name=${name#fuzz_}
	dir=$out/$name
	bin=$dir/fuzz_$name
	log=$dir/fuzz.log
	rm -rf "$dir/corpus"
	mkdir -p "$dir/corpus" || exit 1
	sources=$(directive fuzz-sources "$src")
	libs=$(directive fuzz-libs "$src")

	# shellcheck disable=SC2086 # word splitting of lists is meant
	if ! $CLANG -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
	    -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -Isrc $pkg_cflags \
	    "$src" $sources -o "$bin" $libs >"$dir/build.log" 2>&1; then
		echo "not ok - fuzz $name (build failed, see $dir/build.log)"
		sed 's/^/  /' "$dir/build.log" | head -n 20
		failed=$((failed + 1))
		continue
	fi
	for seeds in "tests/fuzz/corpus/$name" "tests/fuzz/corpus/fuzz_$name"; do
		[ -d "$seeds" ] && cp -p "$seeds"/* "$dir/corpus/" 2>/dev/null
	done

	"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
	    -max_len=8192 -print_final_stats=1 \
	    -artifact_prefix="$dir/" "$dir/corpus" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units:[[:space:]]*//p' \
	    "$log" | tail -n 1)
	if [ "$rc" -eq 0 ]; then
		echo "ok - fuzz $name (${runs:-?} runs)"
		passed=$((passed + 1))
	else
		echo "not ok - fuzz $name (exit $rc, see $log)"
		grep -E 'ERROR|SUMMARY|Test unit written|runtime error' "$log" |
		    head -n 10 | sed 's/^/  /'
		failed=$((failed + 1))
	fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
