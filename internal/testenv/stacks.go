package testenv

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
)

// ManagerStopped reports the error a manager's Start returned. When the manager did not
// stop within its grace period, the goroutines still in the project's code or in a
// controller are logged with it, for these are what held it up.
func ManagerStopped(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%s: %v; goroutines that held it:\n%s", what, err, projectGoroutines())
		return
	}
	t.Errorf("%s: %v", what, err)
}

// projectGoroutines is the stacks of the goroutines that run the project's code or a
// controller's worker.
func projectGoroutines() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var keep []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "github.com/inferfleet/inferfleet/") && !strings.Contains(g, "testenv.projectGoroutines") ||
			strings.Contains(g, "pkg/internal/controller.(*Controller") {
			keep = append(keep, g)
		}
	}
	return strings.Join(keep, "\n\n")
}
