#!/bin/sh
# run.sh - entry point of the benchmark (make bench, make bench-quick).
#
#   sh bench/run.sh [full]   smtpgate against Postfix, interleaved rounds,
#                            writes bench/RESULTS.md (needs root: it runs a
#                            private Postfix instance)
#   sh bench/run.sh quick    smtpgate only, small counts, under a minute
#
# Installs Postfix from Debian when it is missing (as root; debconf set to
# "No configuration", so no system instance is configured or started): its
# smtp-source is the load generator, its smtp-sink the relay target, and in
# the full run it is the reference peer, on loopback high ports only.
# Builds the disk probe (bench/probe.c) into bench/work/. Environment
# overrides are described in bench/README.md.
set -eu
cd "$(dirname "$0")/.."
mode=${1:-full}
case $mode in
full|quick) ;;
*) echo "usage: sh bench/run.sh [full|quick]" >&2; exit 64 ;;
esac

if [ ! -x /usr/sbin/postfix ] || [ ! -x /usr/sbin/smtp-source ] ||
    [ ! -x /usr/sbin/smtp-sink ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "bench: Postfix is missing; as root: apt-get install postfix" >&2
		exit 1
	fi
	echo "postfix postfix/main_mailer_type select No configuration" |
	    debconf-set-selections
	DEBIAN_FRONTEND=noninteractive apt-get install -y postfix ||
	    { apt-get update &&
	      DEBIAN_FRONTEND=noninteractive apt-get install -y postfix; }
fi

bin=${SMTPGATE_BIN:-./smtpgate}
if [ ! -x "$bin" ]; then
	echo "bench: $bin not built; run make first (make bench does)" >&2
	exit 1
fi

mkdir -p bench/work
${CC:-cc} -O2 -Wall -Wextra -pthread -o bench/work/probe bench/probe.c

exec /usr/bin/python3 bench/bench.py "$mode"
