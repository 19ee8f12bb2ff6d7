package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
)

// profileEnv names the file that receives a CPU profile of the whole
// process, from start to exit, whatever the verb. It is how `make bench`
// shows where a restore's or a snapshot's time goes; an operator can send
// one with a performance report ("go tool pprof walship FILE" reads it).
const profileEnv = "WALSHIP_CPUPROFILE"

// startProfile starts a CPU profile into path, if path is not empty, and
// returns the function that ends it. A profile that cannot be written is
// reported on stderr and never stops the verb: it is a measurement, not
// part of the work.
func startProfile(path string, stderr io.Writer) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(stderr, "walship: %s: cannot create the CPU profile: %v\n", profileEnv, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		fmt.Fprintf(stderr, "walship: %s: cannot start the CPU profile: %v\n", profileEnv, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "walship: %s: cannot write the CPU profile %s: %v\n", profileEnv, path, err)
		}
	}
}
