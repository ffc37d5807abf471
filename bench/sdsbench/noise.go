package main

import (
	"context"
	"time"
)

// Timing on a small shared machine is only meaningful when other processes
// leave the CPUs alone. The harness measures how much CPU everything but
// itself and the server used during each timed measurement ("noise"),
// reports it, and, within the time budget, repeats measurements taken while
// other processes used more than harness.NoisyShare of the machine
// (see package bench/internal/harness).

// haveTime reports whether the run's deadline leaves at least need.
func haveTime(ctx context.Context, need time.Duration) bool {
	dl, ok := ctx.Deadline()
	return !ok || time.Until(dl) > need
}
