// runc-capshim is runc for a machine whose capability bounding set lacks some capabilities:
// it removes those from the container's spec (and raises an oomScoreAdj that only they
// would allow lowering) and execs runc (RUNC_CAPSHIM_RUNC, else the
// first runc found in /usr/local/sbin, /usr/sbin, /usr/bin, /usr/local/bin). hack/kind/engine.sh
// registers it with dockerd only where a privileged container fails without it.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/inferfleet/inferfleet/internal/capshim"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "runc-capshim:", err)
		os.Exit(1)
	}
}

func run() error {
	runc, err := findRunc()
	if err != nil {
		return err
	}
	if files := capshim.Files(os.Args[1:]); len(files) > 0 {
		drop, err := capshim.Unavailable()
		if err != nil {
			return err
		}
		if len(drop) > 0 {
			adj := 0
			if b, err := os.ReadFile("/proc/self/oom_score_adj"); err == nil {
				adj, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			}
			if err := capshim.Rewrite(files, capshim.For(drop, adj)); err != nil {
				return err
			}
		}
	}
	return syscall.Exec(runc, append([]string{"runc"}, os.Args[1:]...), os.Environ())
}

func findRunc() (string, error) {
	if p := os.Getenv("RUNC_CAPSHIM_RUNC"); p != "" {
		return p, nil
	}
	self, _ := os.Executable()
	self, _ = filepath.EvalSymlinks(self)
	for _, dir := range []string{"/usr/local/sbin", "/usr/sbin", "/usr/bin", "/usr/local/bin"} {
		p := filepath.Join(dir, "runc")
		if r, err := filepath.EvalSymlinks(p); err == nil && r != self {
			return p, nil
		}
	}
	return "", fmt.Errorf("no runc found in /usr/local/sbin, /usr/sbin, /usr/bin or /usr/local/bin (set RUNC_CAPSHIM_RUNC)")
}
