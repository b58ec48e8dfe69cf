package localfleet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one running control-plane binary whose output goes to its own log file.
type process struct {
	component string
	binary    string
	args      []string
	logPath   string
	cmd       *exec.Cmd
	done      chan struct{} // closed once the process has exited and been reaped
	mu        sync.Mutex
	waitErr   error
}

// StartChild starts cmd in its own process group as a child that dies with this process
// where the OS can arrange it (on Linux, SIGKILL when we die; elsewhere Stop ends it).
func StartChild(cmd *exec.Cmd) error { return spawn(cmd, false) }

// startProcess runs binary with args, appending its output to logPath. detach starts it in a
// session of its own so it outlives the caller; otherwise it dies with the caller.
func startProcess(component, binary string, args []string, logPath string, detach bool) (*process, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "---- %s %s %s\n", time.Now().Format(time.RFC3339), binary, strings.Join(args, " "))
	cmd := exec.Command(binary, args...)
	// An *os.File is handed to the child directly: no copying goroutine, and a detached child
	// keeps logging after we exit.
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = os.Environ()
	err = spawn(cmd, detach)
	logf.Close() // the child holds its own descriptor
	if err != nil {
		return nil, fmt.Errorf("exec %s: %w", binary, err)
	}
	p := &process{component: component, binary: binary, args: args, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitError describes how the process ended, with the tail of its log.
func (p *process) exitError() error {
	p.mu.Lock()
	err := p.waitErr
	p.mu.Unlock()
	if err == nil {
		err = errors.New("exited")
	}
	return fmt.Errorf("%s %w; last lines of %s:\n%s", p.component, err, p.logPath, logTail(p.logPath, 25))
}

// signal sends sig and waits up to timeout for the process to exit, then kills it.
func (p *process) signal(sig os.Signal, timeout time.Duration) error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", p.component, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.component, p.pid())
	}
}

// logTail returns the last n lines of a log file, for error messages.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	const max = 16 << 10
	if st, err := f.Stat(); err == nil && st.Size() > max {
		_, _ = f.Seek(st.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
