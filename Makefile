# hordechat: the two commands a new user needs are `make run` and `make test`.

GO      ?= go
TAGS    := goolm
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.buildVersion=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.6.1

.PHONY: run test test-faults bench build lint fmt fake-horde check-config clean

## run: start hordechat with the embedded defaults (./data, anonymous key, HTTP on 127.0.0.1:8080)
run:
	@$(GO) build -tags $(TAGS) -ldflags '-X main.buildVersion=$(VERSION)' -o bin/hordechat ./cmd/hordechat
	./bin/hordechat run

## test: vet, every test with the race detector (the fault suites included),
## then a short run of every fuzz target (TEST_FUZZTIME each; 0 skips it)
TEST_FUZZTIME ?= 3s
test:
	$(GO) vet -tags $(TAGS) ./...
	$(GO) test -race -tags $(TAGS) -count=1 ./...
	@if [ "$(TEST_FUZZTIME)" != 0 ]; then $(MAKE) --no-print-directory fuzz FUZZTIME=$(TEST_FUZZTIME); fi

## test-faults: only the fault suites: kill -9 mid-flight, Horde faults on
## 1,000 jobs, SQLite locked, Discord gateway drops, Matrix sync failures
FAULT_TESTS := Fault|GatewayDrop|Restart|Resume|FailedCancel|CancelRetry|PendingCancel
test-faults:
	$(GO) test -race -tags $(TAGS) -count=1 $(TESTFLAGS) -run '$(FAULT_TESTS)' ./...

## bench: every benchmark (storage, hordeapi, prompt, binary start-up, and a
## load run of 1,000 chats and 500 /v1 clients that prints RSS, goroutines and added latency)
bench:
	$(GO) test -tags $(TAGS) -run '^$$' -bench . -benchmem ./...

## build: a static binary in bin/hordechat
build:
	CGO_ENABLED=0 $(GO) build -tags $(TAGS) -trimpath -ldflags '$(LDFLAGS)' -o bin/hordechat ./cmd/hordechat

## lint: gofmt, vet and staticcheck
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet -tags $(TAGS) ./...
	$(GO) run $(STATICCHECK) -tags $(TAGS) ./...

## fmt: format every Go file
fmt:
	gofmt -w $$(git ls-files '*.go')

## fake-horde: run the fake Horde on 127.0.0.1:7001 to try hordechat offline
fake-horde:
	$(GO) run ./cmd/fakehorde -listen 127.0.0.1:7001

## check-config: validate ./config.toml (or the defaults) and print it, secrets hidden
check-config:
	$(GO) run -tags $(TAGS) ./cmd/hordechat check-config

clean:
	rm -rf bin

## dendrite: build a Dendrite homeserver (pinned, outside our go.mod) into .cache/bin for test-matrix-integration
DENDRITE_MODULE  := github.com/element-hq/dendrite
DENDRITE_VERSION := v0.15.2
DENDRITE_BIN     := $(CURDIR)/.cache/bin
DENDRITE_STAMP   := $(DENDRITE_BIN)/.dendrite-$(DENDRITE_VERSION)

.PHONY: dendrite test-matrix-integration

dendrite: $(DENDRITE_STAMP)

# `go install pkg@version` also asks the proxy for the module's version
# list, which some proxies refuse; building inside the downloaded module
# (its own go.mod and go.sum) needs only the pinned version.
$(DENDRITE_STAMP):
	@mkdir -p $(DENDRITE_BIN)
	@dir=$$(cd "$${TMPDIR:-/tmp}" && GOFLAGS= $(GO) mod download -json $(DENDRITE_MODULE)@$(DENDRITE_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p') && \
	test -n "$$dir" && \
	echo "building Dendrite $(DENDRITE_VERSION) from $$dir into $(DENDRITE_BIN)" && \
	cd "$$dir" && GOTOOLCHAIN=local GOFLAGS='-buildvcs=false -mod=readonly' $(GO) build -trimpath -o $(DENDRITE_BIN)/ \
		./cmd/dendrite ./cmd/generate-config ./cmd/generate-keys ./cmd/create-account
	@touch $@

## test-matrix-integration: the Matrix adapter against a real Dendrite on loopback (skips if it cannot be built)
test-matrix-integration:
	@$(MAKE) --no-print-directory dendrite || echo "test-matrix-integration: Dendrite $(DENDRITE_VERSION) could not be built; the integration test will skip"
	HORDECHAT_DENDRITE=$(DENDRITE_BIN) $(GO) test -tags $(TAGS) -count=1 -v -run Dendrite ./bot/matrix/

## fuzz: run every fuzz target for FUZZTIME each (default 10s), one after another
FUZZTIME ?= 10s
FUZZ_TARGETS := \
	FuzzDecodeChatRequest:./bridge/openai \
	FuzzRender:./bridge/prompt \
	FuzzCleanOutput:./bridge/prompt \
	FuzzSplit:./bot \
	FuzzLoadConfig:./cmd/hordechat \
	FuzzParseText:./bot \
	FuzzDecodeResponses:./hordeapi

.PHONY: fuzz
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		name=$${t%%:*}; pkg=$${t#*:}; \
		echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -tags $(TAGS) -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done
