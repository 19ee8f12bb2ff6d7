# walship — see README.md.
GO ?= go

.PHONY: bench build demo fuzz test test-servers torture torture-standby vet

# A static binary: the SQLite driver is pure Go.
build:
	CGO_ENABLED=0 $(GO) build -o bin/walship ./cmd/walship

# Replicate a sample database under load, restore it, compare.
demo: build
	$(GO) run ./internal/demo ./bin/walship

# vet also builds the binary for 32-bit ARM (a Raspberry Pi, an edge
# device), where int is 32 bits: a constant that does not fit one only
# shows there.
vet:
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	GOOS=linux GOARCH=arm GOARM=7 CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/walship

# Every test, with the race detector, against real servers on 127.0.0.1
# (installed once by scripts/install-test-servers), then every fuzz target
# for a few seconds. Some tests mount a small tmpfs and so need root (CI runs
# as root).
test: vet test-servers
	$(GO) test -race -count=1 -timeout 50m ./...
	FUZZTIME=3s scripts/fuzz

# Every fuzz target for FUZZTIME each (default 1m).
FUZZTIME ?= 1m
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz

# MinIO, versitygw, fake-gcs-server, Azurite, sshd, rclone, nats-server and
# Litestream (v0.5.17 and v0.3.13):
# quick when already installed.
test-servers:
	scripts/install-test-servers

# The benchmark suite: measures write overhead, RPO, restore, first snapshot
# (the four also with an encrypted replica), idle cost and scale against MinIO
# on 127.0.0.1, each beside Litestream v0.5.17 (installed by test-servers) and
# the machine's own limits, prints a table and writes BENCHMARKS.md. Takes
# about an hour on 2 cores (BENCHFLAGS=-quick: about 12 minutes); never part
# of make test.
bench: build test-servers
	$(GO) run ./bench -walship bin/walship $(BENCHFLAGS)

# The torture suite: thousands of short trials that SIGKILL walship under
# load, put it behind a failing network, fill its disks, damage its replica
# and race its restores, each restore checked; writes RELIABILITY.md. Takes
# about 45 minutes on 2 cores and needs root (the diskfull kind mounts a
# tmpfs); never part of make test. TORTUREFLAGS="-trials 50" is a quick
# run; TORTUREFLAGS="-seed S -replay kind:N" runs one failing trial again.
torture: build test-servers torture-standby
	$(GO) run ./torture -walship bin/walship $(TORTUREFLAGS)

# Failover 20 times in a row (the primary SIGKILLed under writes, the
# standby promoted), on a directory and on MinIO: about 5 minutes.
torture-standby: test-servers
	WALSHIP_STANDBY_CYCLES=20 $(GO) test -count=1 -timeout 30m -run 'TestFileStandby|TestE2EStandbyMinIO' ./internal/e2e ./storage/s3
