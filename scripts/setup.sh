#!/bin/sh
# Installs the Debian packages smtpgate needs to build and test.
# As root: installs what is missing (apt-get). Otherwise: names what is
# missing and fails, so that a user knows exactly what to ask for.
set -u
PKGS="build-essential pkg-config libevent-dev libssl-dev libc-ares-dev
libcrypt-dev python3 python3-aiosmtpd swaks openssl clang
libclang-rt-14-dev iproute2 procps dnsmasq-base dovecot-lmtpd dovecot-imapd"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "smtpgate: missing Debian packages:$missing" >&2
		echo "smtpgate: run as root, or: sudo apt-get install$missing" >&2
		exit 1
	fi
	echo "smtpgate: installing:$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null || { echo "smtpgate: apt-get update failed" >&2; exit 1; }
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
		{ echo "smtpgate: apt-get install$missing failed" >&2; exit 1; }
fi

# The unprivileged user the server drops to when started as root.
if [ "$(id -u)" = 0 ] && ! getent passwd smtpgate >/dev/null; then
	useradd --system --home-dir /nonexistent --no-create-home \
		--shell /usr/sbin/nologin smtpgate ||
		{ echo "smtpgate: cannot create user smtpgate" >&2; exit 1; }
fi
exit 0
