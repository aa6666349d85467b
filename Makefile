# A few honest targets. The README's two commands are deploy/demo and deploy/test.
.PHONY: demo test build lint bench fuzz

demo:
	deploy/demo

test:
	deploy/test

build:
	mkdir -p bin
	go build -o bin/ ./edge/cmd/... ./central/cmd/...
	CGO_ENABLED=0 go build ./central/...

lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l . && false)
	go vet ./...
	go tool staticcheck ./...

# Benchmarks of the hot paths; compare runs with benchstat.
bench:
	go test -run '^$$' -bench . -benchtime 1x ./edge/agent/
	go test -run '^$$' -bench . ./edge/spool/ ./edge/uplink/ ./edge/analyser/ ./central/ingest/ ./edge/vision/

# Every fuzz target for FUZZTIME each (go test -fuzz takes one target at a time).
FUZZTIME ?= 20s
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
	  dir=$$(dirname $$f); \
	  for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | cut -d' ' -f2); do \
	    echo "== $$dir $$t"; go test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$dir; \
	  done; \
	done
