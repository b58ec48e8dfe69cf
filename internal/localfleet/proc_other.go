//go:build !linux

package localfleet

import (
	"os"
	"os/exec"
	"syscall"
)

// Outside Linux there is no Pdeathsig: attached children are stopped by Stop only.
func spawn(cmd *exec.Cmd, detach bool) error { return cmd.Start() }

// pidRunning cannot check the binary without /proc; it only asks whether pid exists.
func pidRunning(pid int, binary string) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	return p.Signal(syscall.Signal(0)) == nil
}

func signalPID(pid int, sig syscall.Signal) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Signal(sig)
}
