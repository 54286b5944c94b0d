#!/bin/sh
# Runs every test: the C unit tests, then the integration tests that start
# the real binary on loopback. Each test program prints "ok - NAME" or
# "not ok - NAME" lines; this script counts them and ends with one line
# "N passed, N failed". Exit status 1 when anything failed.
#   SMTPGATE_BIN  binary under test (absolute path)
#   UNIT_DIR      directory of the built unit-test binaries
#   TESTS         optional: only integration tests whose file name matches
set -u
cd "$(dirname "$0")/.." || exit 1
: "${SMTPGATE_BIN:=$PWD/smtpgate}"
: "${UNIT_DIR:=build/rel/tests}"
export SMTPGATE_BIN
PY=/usr/bin/python3
logdir=$(mktemp -d /tmp/smtpgate-tests.XXXXXX)
passed=0 failed=0 broken=""

run_one() {	# name, command...
	name=$1; shift
	log="$logdir/$(echo "$name" | tr '/' '_').log"
	timeout 900 "$@" >"$log" 2>&1
	rc=$?
	p=$(grep -c '^ok - ' "$log")
	f=$(grep -c '^not ok - ' "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		# A crash or timeout with no test marked failed still fails.
		echo "not ok - $name exited with status $rc" >>"$log"
		f=1
	fi
	passed=$((passed + p)); failed=$((failed + f))
	if [ "$f" -ne 0 ]; then
		broken="$broken $log"
		echo "FAIL $name ($p passed, $f failed)"
	else
		echo "PASS $name ($p passed)"
	fi
}

run_one "lint" sh tests/lint.sh
for t in "$UNIT_DIR"/test_*; do
	[ -x "$t" ] || continue
	run_one "unit/$(basename "$t")" "$t"
done
for t in tests/integration/test_*.py; do
	[ -f "$t" ] || continue
	case "$t" in *"${TESTS:-}"*) ;; *) continue ;; esac
	run_one "integration/$(basename "$t" .py)" $PY "$t"
done

for log in $broken; do
	echo "---- $log"
	grep -v '^ok - ' "$log" | tail -n 60
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
