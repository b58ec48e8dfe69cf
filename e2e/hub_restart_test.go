package e2e

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/internal/localfleet"
)

// TestHubRestartDuringOutage hangs a member's API server (SIGSTOP: connections open,
// nothing answers), kills the hub (its own process) 6s later and starts it again: the
// restarted hub takes the outage up from when the first hub recorded it, so the share
// moves within unhealthyAfter + 5s of the hang, not of the restart, and the failover
// happens once.
func TestHubRestartDuringOutage(t *testing.T) {
	const unhealthyAfter = 10 * time.Second
	lf := framework.StartLocalFleet(t, []localfleet.ClusterSpec{
		localfleet.DefaultMember("gke-west", "europe-west3"),
		localfleet.DefaultMember("gke-east", "us-east4"),
	})
	ctx := context.Background()
	hub := lf.Hub.Client
	bin, dir := buildHub(t), t.TempDir()
	first := startHub(t, bin, dir, "hub-first", lf.Hub.KubeconfigPath)

	key := createFailoverService(ctx, t, hub, "restart", unhealthyAfter)

	east := lf.Member("gke-east").Local
	if err := east.HangAPIServer(); err != nil {
		t.Fatal(err)
	}
	hung := time.Now()
	t.Cleanup(func() { _ = east.ResumeAPIServer() })
	time.Sleep(6 * time.Second)
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()
	second := startHub(t, bin, dir, "hub-second", lf.Hub.KubeconfigPath)

	expectPlaced(ctx, t, hub, key, unhealthyAfter+time.Minute, "gke-east's share moved",
		map[string]int32{"gke-west": 6, "gke-east": 0})
	moved := time.Since(hung)
	t.Logf("share moved %s after the hang", moved.Round(100*time.Millisecond))
	if moved > unhealthyAfter+5*time.Second {
		t.Errorf("share moved %s after the hang, beyond unhealthyAfter (%s) + 5s", moved.Round(100*time.Millisecond), unhealthyAfter)
	}
	if n := failoverEvents(ctx, t, hub, key); n != 1 {
		t.Errorf("%d FailingOver events, want one", n)
	}
	// How often the restarted hub's kubeconfig provider engaged and removed the hung member
	// (multicluster-runtime's provider removes a cluster whose engagement fails, and
	// engages it again): logged, the failover above does not wait on it.
	b, _ := os.ReadFile(second.log)
	removed := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "Removing cluster") && strings.Contains(line, `"gke-east"`) {
			removed++
		}
	}
	t.Logf("the restarted hub's provider removed gke-east %d times in the %s it hung", removed, time.Since(hung).Round(time.Second))
}
