# SpinUp - one Makefile for the whole tree (see README.md, "Source layout").
#
#   make            build bin/ and every test binary
#   make test       install deps if missing, build, run the whole suite on a
#                   throwaway Postgres + Redis (scripts/run-tests.sh)
#   make check      layer check + the suite again under ASan+UBSan
#   make bench      benchmarks, printed as a table
#   make demo       the whole system locally; make demo-down stops it
#
# Everything but main() goes into build/libspinup.a; binaries and tests link it.

CC      ?= cc
BUILD   ?= build
PKGS    := libpq libcurl jansson hiredis yaml-0.1 libssl libcrypto libxml-2.0 libmicrohttpd

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wvla -Wno-format-nonliteral -Wno-format-truncation
ifneq ($(CI),)
WARN    += -Werror
endif
ifneq ($(WERROR),)
WARN    += -Werror
endif
OPT     ?= -O2 -g
SANFLAGS :=
ifneq ($(SAN),)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT     := -O1 -g
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(SANFLAGS) $(PKG_CFLAGS) -I. -I$(BUILD)/gen
LDFLAGS += $(SANFLAGS)
LDLIBS  += $(PKG_LIBS) -lm -lpthread

LAYERS  := model drivers reconciler cli agent localcloud
MAINS   := $(wildcard $(addsuffix /main.c,$(LAYERS)))
LIBSRC  := $(filter-out $(MAINS),$(wildcard $(addsuffix /*.c,$(LAYERS))))
GENSRC  := $(BUILD)/gen/migrations_data.c
LIBOBJ  := $(LIBSRC:%.c=$(BUILD)/%.o) $(GENSRC:.c=.o)
LIB     := $(BUILD)/libspinup.a

# $(BINDIR)/NAME <- DIR/main.c
BINDIR  ?= bin
BIN_spinupd           := reconciler
BIN_spinctl           := cli
BIN_spinup-agent      := agent
BIN_spinup-localcloud := localcloud
BINNAMES := $(foreach b,spinupd spinctl spinup-agent spinup-localcloud,\
             $(if $(wildcard $(BIN_$(b))/main.c),$(b)))
BINS    := $(addprefix $(BINDIR)/,$(BINNAMES))

TESTSRC := $(wildcard tests/test_*.c)
TESTLIB := $(wildcard tests/lib/*.c)
TESTOBJ := $(TESTLIB:%.c=$(BUILD)/%.o)
TESTS   := $(TESTSRC:tests/%.c=$(BUILD)/tests/%)
TOOLSRC := $(wildcard tests/tools/*.c)
TOOLS   := $(TOOLSRC:tests/tools/%.c=$(BUILD)/tools/%)
TESTLIBS := $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

.PHONY: all test check bench demo demo-down deps clean layers fuzz

# Objects are not intermediates: keep them so a rebuild relinks only what changed.
.SECONDARY:
all: $(BINS) $(TESTS) $(TOOLS)

deps:
	@scripts/install-deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/gen/migrations_data.c: $(sort $(wildcard drivers/migrations/*.sql)) scripts/embed-sql.sh
	@mkdir -p $(dir $@)
	scripts/embed-sql.sh $(sort $(wildcard drivers/migrations/*.sql)) > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/migrations_data.o: $(BUILD)/gen/migrations_data.c
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIBOBJ)
	@rm -f $@
	ar rcs $@ $^

define BIN_RULE
$(BINDIR)/$(1): $(BUILD)/$(BIN_$(1))/main.o $(LIB)
	@mkdir -p $(BINDIR)
	$$(CC) $$(LDFLAGS) $$< $(LIB) $$(LDLIBS) -o $$@
endef
$(foreach b,$(BINNAMES),$(eval $(call BIN_RULE,$(b))))

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TESTOBJ) $(LIB)
	$(CC) $(LDFLAGS) $< $(TESTOBJ) $(LIB) $(LDLIBS) $(TESTLIBS) -o $@

$(BUILD)/tools/%: $(BUILD)/tests/tools/%.o $(TESTOBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< $(TESTOBJ) $(LIB) $(LDLIBS) $(TESTLIBS) -o $@

# model/ does no I/O and includes nothing of ours from other layers.
layers:
	@! grep -nE '#include[[:space:]]*[<"](libpq-fe\.h|curl/|hiredis|microhttpd|libxml/|openssl/|\.\./drivers|\.\./reconciler|\.\./cli)' model/*.[ch] \
	  || { echo "layers: model/ includes an I/O library or a higher layer" >&2; exit 1; }
	@! grep -nE '\b(clock_gettime|gettimeofday|time|rand|random|fopen|socket|connect|getenv)\(' model/*.c \
	  || { echo "layers: model/ reads a clock, randomness, files or sockets" >&2; exit 1; }
	@echo "layers: ok"

test: deps
	@$(MAKE) --no-print-directory all
	@scripts/run-tests.sh $(BUILD)

check: deps layers
	@$(MAKE) --no-print-directory BUILD=build/san BINDIR=build/san/bin SAN=1 all
	@SPINUP_BIN_DIR=build/san/bin scripts/run-tests.sh build/san

bench: deps
	@$(MAKE) --no-print-directory all
	@scripts/bench.sh $(BUILD)

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh up

demo-down:
	@scripts/demo.sh down

clean:
	rm -rf build bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
