# A few honest targets. The README's two commands are deploy/demo and deploy/test.
.PHONY: demo test lint bench fuzz build

demo:
	deploy/demo

test:
	deploy/test

build:
	go build -o bin/ ./edge/cmd/... ./central/cmd/...
	CGO_ENABLED=0 go build ./central/...

lint:
	gofmt -l . | (! grep .)
	go vet ./...

bench:
	go test -run '^$$' -bench . -benchtime 2s ./...

# Short fuzzing of every parser of outside input.
fuzz:
	go test -run '^$$' -fuzz FuzzDecodeManifest -fuzztime 30s .
