#!/bin/bash
# ab.sh - two smtpgate binaries, alternating (A B A B ...), on one workload:
# the quick way to see what a change does, next to the build before it.
#
#   bash bench/ab.sh BIN_A BIN_B [W1|W1d|W4] [PAIRS]
#
# W1: 20 sessions, 3,000 messages to one local mailbox; W1d: the same right
# after the previous run's messages were deleted from that mailbox (slow
# inode creation on ext4 without a journal, see bench/FINDINGS.md); W4: one
# session, 1,000 messages. Prints msg/s until all are in new/. Each binary
# keeps its own directories under bench/work/ab/ for the whole run; files
# are set aside (not deleted) between runs except for W1d, and removed at
# the end; sync(2) and half a second before each measured run. Only
# loopback; stops only the servers it started, by PID.
set -eu
[ $# -ge 2 ] || { echo "usage: bash bench/ab.sh BIN_A BIN_B [W1|W1d|W4] [PAIRS]" >&2; exit 64; }
a=$(realpath "$1"); b=$(realpath "$2"); w=${3:-W1}; pairs=${4:-3}
cd "$(dirname "$0")"
work=$(pwd)/work/ab
src=/usr/sbin/smtp-source
mkdir -p "$work"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

run() {	# run BIN TAG
	d=$work/$2
	mkdir -p "$d/aside"
	cat > "$d/conf" <<EOF
hostname = ab.bench.test
listen = 127.0.0.1:$port
submission_listen =
spool_dir = $d/spool
postoffice_dir = $d/mail
local_domains = bench.local
relay_host = 127.0.0.1:9
max_connections = 20000
max_connections_per_ip = 20000
user = root
EOF
	new=$d/mail/rcpt/new
	if [ -d "$new" ]; then
		if [ "$w" = W1d ]; then
			find "$new" -type f -delete
		else
			mv "$new" "$d/aside/$(date +%s%N)" && mkdir "$new"
		fi
	fi
	"$1" serve -c "$d/conf" > "$d/log" 2>&1 &
	pid=$!
	i=0
	while ! (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do
		i=$((i + 1)); [ $i -lt 100 ] || { kill $pid; echo "$2: no start" >&2; exit 1; }
		sleep 0.05
	done
	case $w in
	W4) n=1000; args="-s 1 -d" ;;
	*) n=3000; args="-s 20" ;;
	esac
	# no run pays for the write-back of the one before (FINDINGS 5)
	sync; sleep 0.5
	t0=$(date +%s.%N)
	$src $args -m $n -l 5120 -f s@bench.local -t rcpt@bench.local 127.0.0.1:$port > /dev/null
	i=0
	while [ "$(find "$new" -type f | wc -l)" -lt $n ]; do
		i=$((i + 1)); [ $i -lt 6000 ] || { kill $pid; echo "$2: timeout" >&2; exit 1; }
		sleep 0.005
	done
	t1=$(date +%s.%N)
	kill $pid; wait $pid 2>/dev/null || true
	echo "$2 $w: $(echo "$n / ($t1 - $t0)" | bc) msg/s"
}

if [ "$w" = W1d ]; then	# the first deletion needs a first run
	run "$a" A > /dev/null
	run "$b" B > /dev/null
fi
k=0
while [ $k -lt "$pairs" ]; do
	run "$a" A
	run "$b" B
	k=$((k + 1))
done
rm -rf "$work"
