package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/internal/localfleet"
)

// TestHubRestartDuringOutage hangs a member's API server (SIGSTOP: connections open,
// nothing answers), kills the hub (its own process) 6s later and starts it again: the
// restarted hub takes the outage up from when the first hub recorded it, so the share
// moves within unhealthyAfter + 5s of the hang, not of the restart, and the failover
// happens once. The restarted hub keeps the hung member registered (no drop and re-add
// loop), and a service deleted meanwhile says what its deletion waits for, then goes once
// the member answers.
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
	if got, _ := shares(ctx, t, hub, key); got["gke-east"].Reachable || got["gke-east"].Health != v1alpha1.Unreachable || !got["gke-east"].FailedOver {
		t.Errorf("gke-east's entry when its share moved: %+v, want unreachable and failed over", got["gke-east"])
	}
	t.Logf("share moved %s after the hang", moved.Round(100*time.Millisecond))
	if moved > unhealthyAfter+5*time.Second {
		t.Errorf("share moved %s after the hang, beyond unhealthyAfter (%s) + 5s", moved.Round(100*time.Millisecond), unhealthyAfter)
	}
	if n := failoverEvents(ctx, t, hub, key); n != 1 {
		t.Errorf("%d FailingOver events, want one", n)
	}

	// The restarted hub keeps the hung member registered while it does not answer: its
	// provider does not drop it and add it again on every failed engagement.
	time.Sleep(20 * time.Second)
	if n := removals(t, second.log, "gke-east"); n > 1 {
		t.Errorf("the restarted hub's provider removed gke-east %d times in the %s it hung, want at most one", n, time.Since(hung).Round(time.Second))
	}

	// Deleted while the member hangs: the deletion waits for it and the status says so.
	svc := &v1alpha1.FleetInferenceService{}
	if err := hub.Get(ctx, key, svc); err != nil {
		t.Fatal(err)
	}
	if err := hub.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, time.Minute, "Ready names the hung member", func() error {
		if err := hub.Get(ctx, key, svc); err != nil {
			return err
		}
		c := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.Status == metav1.ConditionTrue || !strings.Contains(c.Message, "gke-east") {
			return fmt.Errorf("Ready %+v", c)
		}
		return nil
	})
	time.Sleep(5 * time.Second)
	if err := hub.Get(ctx, key, svc); err != nil {
		t.Fatalf("the service went while gke-east hung: %v", err)
	}
	if err := east.ResumeAPIServer(); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 2*time.Minute, "deletion completes once gke-east answers", func() error {
		if err := hub.Get(ctx, key, svc); !apierrors.IsNotFound(err) {
			return fmt.Errorf("service still there (%v)", err)
		}
		d := &appsv1.Deployment{}
		if err := lf.Member("gke-east").Client.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: key.Name}, d); !apierrors.IsNotFound(err) {
			return fmt.Errorf("gke-east's Deployment: %v", err)
		}
		return nil
	})
	if n := removals(t, second.log, "gke-east"); n > 1 {
		t.Errorf("the restarted hub's provider removed gke-east %d times, want at most one", n)
	}
}

// removals counts the kubeconfig provider's removals of a cluster in a hub's log.
func removals(t *testing.T, logFile, cluster string) int {
	t.Helper()
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "Removing cluster") && strings.Contains(line, `"`+cluster+`"`) {
			n++
		}
	}
	return n
}
