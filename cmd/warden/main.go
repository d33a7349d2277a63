// Command warden is Warden's binary: the decision server and the tools that
// go with it. main only calls run, so tests can drive the whole program.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() {
	tuneGC(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "warden:", err)
		os.Exit(1)
	}
}

// defaultGCPercent is Warden's GOGC when the environment sets none. A
// decision point's live heap is small (compiled policies, caches: tens of
// megabytes), while every request allocates a few kilobytes, most of them in
// net/http; at Go's default of 100 the collector runs several times a
// second under load and each cycle's marking, sharing the cores with the
// requests, is what lengthens Warden's tail. At 400 the cycles are four to
// five times rarer, for a heap up to five times the live one
// (docs/deploy.md, docs/performance.md).
const defaultGCPercent = 400

// tuneGC sets defaultGCPercent unless GOGC is set, which keeps its meaning
// (GOMEMLIMIT too: Go reads both itself).
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
}
