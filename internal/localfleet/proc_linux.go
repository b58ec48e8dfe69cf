package localfleet

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Pdeathsig fires when the *thread* that forked the child exits, not the process, so every
// attached child is forked from one goroutine locked to its thread for the life of the process.
var spawner struct {
	once sync.Once
	reqs chan spawnRequest
}

type spawnRequest struct {
	cmd  *exec.Cmd
	errc chan error
}

func spawn(cmd *exec.Cmd, detach bool) error {
	if detach {
		// A new session: no controlling terminal, no signal from our process group, and no
		// Pdeathsig, so the child survives `fleetctl up --detach`.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		return cmd.Start()
	}
	// Own process group so Ctrl-C reaches only us and teardown stays orderly; SIGKILL if we die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnRequest)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range spawner.reqs {
				r.errc <- r.cmd.Start()
			}
		}()
	})
	errc := make(chan error, 1)
	spawner.reqs <- spawnRequest{cmd, errc}
	return <-errc
}

// pidRunning reports whether pid is alive and still runs binary (so a recycled PID is never
// signalled). Zombies count as gone: in a container nobody may ever reap them.
func pidRunning(pid int, binary string) bool {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return false
	}
	exe = strings.TrimSuffix(exe, " (deleted)") // the binary was rebuilt while running
	if binary != "" && filepath.Clean(exe) != filepath.Clean(binary) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// Fields after the parenthesised command name: "state ppid ...".
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		if s := stat[i+2]; s == 'Z' || s == 'X' {
			return false
		}
	}
	return true
}

func signalPID(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }
