#!/bin/sh
# Structural checks, run by tests/run.sh (STYLE §1, §8):
#  - no upward include: src/lib < src/mail < src/net < src/gate < src/cmd,
#    a file includes only its own layer and the layers before it;
#  - every configuration key of src/gate/config.c is documented in
#    doc/smtpgate.conf.5;
#  - no strcpy/strcat/sprintf/gets in src/.
cd "$(dirname "$0")/.." || exit 1
layers="lib mail net gate cmd"

rank() {
	i=0
	for l in $layers; do
		[ "$l" = "$1" ] && { echo $i; return; }
		i=$((i + 1))
	done
	echo 99
}

bad=""
for f in src/*/*.c src/*/*.h; do
	own=$(rank "$(basename "$(dirname "$f")")")
	for inc in $(sed -n 's/^#include "\([a-z]*\)\/.*/\1/p' "$f"); do
		if [ "$(rank "$inc")" -gt "$own" ]; then
			bad="$bad $f->$inc"
		fi
	done
done
if [ -z "$bad" ]; then
	echo "ok - lint: no upward include"
else
	echo "not ok - lint: upward includes:$bad"
fi

missing=""
for k in $(sed -n 's/^	{ "\([a-z_]*\)", KEY_.*/\1/p' src/gate/config.c); do
	grep -q "^\.It Ic $k " doc/smtpgate.conf.5 || missing="$missing $k"
done
if [ -z "$missing" ]; then
	echo "ok - lint: every config key is in doc/smtpgate.conf.5"
else
	echo "not ok - lint: keys missing from doc/smtpgate.conf.5:$missing"
fi

unsafe=$(grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets)\(' src/*/*.c || true)
if [ -z "$unsafe" ]; then
	echo "ok - lint: no strcpy/strcat/sprintf/gets"
else
	echo "not ok - lint: unsafe string calls:"
	echo "$unsafe"
fi
