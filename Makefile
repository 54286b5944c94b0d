# smtpgate - build, run, test.
#   make              build ./smtpgate
#   make run          install missing Debian packages (as root), build, serve
#   make test         same set-up, then every test (ends with "N passed, N failed")
#   make SANITIZE=1 test   the same under AddressSanitizer + UBSan
#   make fuzz         run each libFuzzer target for FUZZ_SECONDS

SANITIZE ?=
BUILD := build/$(if $(SANITIZE),san,rel)
CC ?= cc
PKGS := libevent libevent_openssl libevent_pthreads libcares openssl libcrypt

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null || \
	echo -levent_openssl -levent_pthreads -levent -lcares -lssl -lcrypto -lcrypt)

comma := ,
SAN_FLAGS := -fsanitize=address$(comma)undefined -fno-sanitize-recover=all
OPT := $(if $(SANITIZE),-O1 -fno-omit-frame-pointer $(SAN_FLAGS),-O2)
WERROR := $(if $(CI),-Werror,)
CFLAGS := -std=c11 -D_GNU_SOURCE -g $(OPT) -Wall -Wextra -Wshadow \
	-Wno-unused-parameter $(WERROR) -Isrc $(PKG_CFLAGS) -MMD -MP
LDFLAGS := $(if $(SANITIZE),$(SAN_FLAGS),)
LIBS := $(PKG_LIBS) -lpthread

LIB_SRCS := $(sort $(shell find src -name '*.c' ! -path 'src/cmd/main.c'))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
BIN := $(if $(SANITIZE),$(BUILD)/smtpgate,smtpgate)

.PHONY: all setup run test unit fuzz clean bench bench-quick

all: $(BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libsmtpgate.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/src/cmd/main.o $(BUILD)/libsmtpgate.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/t.h $(BUILD)/libsmtpgate.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(BUILD)/libsmtpgate.a $(LIBS)

unit: $(UNIT_BINS)

setup:
	@sh scripts/setup.sh

run: setup
	@$(MAKE) --no-print-directory all
	./smtpgate serve

test: setup
	@$(MAKE) --no-print-directory $(BIN) unit
	@SMTPGATE_BIN=$(abspath $(BIN)) UNIT_DIR=$(BUILD)/tests sh tests/run.sh

FUZZ_SECONDS ?= 60
fuzz: setup
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS)

bench: all
	@SMTPGATE_BIN=$(abspath $(BIN)) sh bench/run.sh full

bench-quick: all
	@SMTPGATE_BIN=$(abspath $(BIN)) sh bench/run.sh quick

clean:
	rm -rf build smtpgate

-include $(LIB_OBJS:.o=.d) $(BUILD)/src/cmd/main.d
