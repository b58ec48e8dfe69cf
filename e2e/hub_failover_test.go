package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	infv1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/controllers"
	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/localfleet"
)

// hubProcess is one hub replica, run from the built binary.
type hubProcess struct {
	name string
	cmd  *exec.Cmd
	log  string
}

// buildHub builds the hub binary (cmd/hub) into a temporary folder.
func buildHub(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hub")
	build := exec.Command("go", "build", "-o", bin, "./cmd/hub")
	build.Dir = framework.Root()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/hub: %v\n%s", err, out)
	}
	return bin
}

// startHub runs the hub binary against the config cluster of kubeconfig, logging to
// dir/name.log (printed when the test fails), until the test ends.
func startHub(t *testing.T, bin, dir, name, kubeconfig string, args ...string) *hubProcess {
	t.Helper()
	h := &hubProcess{name: name, log: filepath.Join(dir, name+".log")}
	f, err := os.Create(h.log)
	if err != nil {
		t.Fatal(err)
	}
	h.cmd = exec.Command(bin, append([]string{"--kubeconfig", kubeconfig,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--probe-interval", "1s", "--member-timeout", "3s"}, args...)...)
	h.cmd.Stdout, h.cmd.Stderr = f, f
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = h.cmd.Process.Kill()
		_ = h.cmd.Wait()
		_ = f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(h.log)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("--- %s log (tail)\n%s", name, b)
		}
	})
	return h
}

// createFailoverService runs the two-region sample as name, failing over after
// unhealthyAfter and not back within the test, and waits until each member runs its 3.
func createFailoverService(ctx context.Context, t *testing.T, hub client.Client, name string, unhealthyAfter time.Duration) client.ObjectKey {
	t.Helper()
	svc := loadSample(t, "fleet_v1alpha1_two-region-h100.yaml")
	svc.Name = name
	svc.Spec.Model.Server.HuggingFaceTokenSecretRef = nil
	svc.Spec.Placement.Failover = v1alpha1.FailoverSpec{
		Policy:         v1alpha1.FailoverRedistribute,
		UnhealthyAfter: &metav1.Duration{Duration: unhealthyAfter},
		FailbackAfter:  &metav1.Duration{Duration: time.Hour},
	}
	if err := hub.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(svc)
	expectShares(ctx, t, hub, key, time.Minute, "3 ready in each member", map[string]int32{"gke-west": 3, "gke-east": 3})
	return key
}

// failoverEvents counts the FailingOver events of a service, repeats included.
func failoverEvents(ctx context.Context, t *testing.T, hub client.Client, key client.ObjectKey) int {
	t.Helper()
	var evs eventsv1.EventList
	if err := hub.List(ctx, &evs, client.InNamespace(key.Namespace)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs.Items {
		if e.Regarding.Name == key.Name && e.Reason == controllers.ReasonFailingOver {
			if e.Series != nil {
				n += int(e.Series.Count)
			} else {
				n++
			}
		}
	}
	return n
}

// leads says whether the replica's log says it acquired the Lease.
func (h *hubProcess) leads() bool {
	b, _ := os.ReadFile(h.log)
	return strings.Contains(strings.ToLower(string(b)), "successfully acquired lease")
}

// TestHubFailover runs two hub replicas with leader election and SIGKILLs the leader in the
// middle of a region failover (a member is down, its share not moved yet): the other
// replica leads within the lease duration, the failover happens once (one FailingOver
// event), and the surviving member's objects are neither deleted nor written more than
// the failover needs (its model Deployment changes generation once).
func TestHubFailover(t *testing.T) {
	const (
		lease          = 6 * time.Second
		renew          = 4 * time.Second
		retry          = time.Second
		unhealthyAfter = 10 * time.Second
	)
	lf := framework.StartLocalFleet(t, []localfleet.ClusterSpec{
		localfleet.DefaultMember("gke-west", "europe-west3"),
		localfleet.DefaultMember("gke-east", "us-east4"),
	})
	ctx := context.Background()
	hub := lf.Hub.Client

	bin, dir := buildHub(t), t.TempDir()
	start := func(name string) *hubProcess {
		return startHub(t, bin, dir, name, lf.Hub.KubeconfigPath, "--leader-elect",
			"--leader-elect-lease-duration", lease.String(), "--leader-elect-renew-deadline", renew.String(),
			"--leader-elect-retry-period", retry.String())
	}
	replicas := []*hubProcess{start("hub-a"), start("hub-b")}
	var leader, follower *hubProcess
	framework.Eventually(t, time.Minute, "one replica leads", func() error {
		var leading []*hubProcess
		for _, h := range replicas {
			if h.leads() {
				leading = append(leading, h)
			}
		}
		if len(leading) != 1 {
			return fmt.Errorf("%d replicas lead", len(leading))
		}
		leader = leading[0]
		return nil
	})
	follower = replicas[0]
	if follower == leader {
		follower = replicas[1]
	}
	holder := func() string {
		var l coordinationv1.Lease
		if err := hub.Get(ctx, types.NamespacedName{Namespace: fleet.RegistrationNamespace, Name: "inferfleet-hub"}, &l); err != nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	first := holder()

	key := createFailoverService(ctx, t, hub, "hub-failover", unhealthyAfter)

	west := lf.Member("gke-west").Client
	dep, err := modelDeployment(ctx, west, key)
	if err != nil {
		t.Fatal(err)
	}
	pool := &infv1.InferencePool{}
	if err := west.Get(ctx, key, pool); err != nil {
		t.Fatal(err)
	}

	// The region goes; once the leader sees it unreachable, and before unhealthyAfter
	// moves its share, the leader dies.
	east := lf.Member("gke-east")
	if err := east.Faults.StopAPIServer(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 30*time.Second, "the leader sees gke-east unreachable", func() error {
		got, _ := shares(ctx, t, hub, key)
		if e := got["gke-east"]; e.Reachable || e.FailedOver {
			return fmt.Errorf("gke-east: reachable %v, failed over %v", e.Reachable, e.FailedOver)
		}
		return nil
	})
	if err := leader.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	framework.Eventually(t, lease+3*retry+5*time.Second, "the other replica leads", func() error {
		if h := holder(); h == first || h == "" || !follower.leads() {
			return fmt.Errorf("Lease held by %q (the killed leader was %q)", h, first)
		}
		return nil
	})
	took := time.Since(killed)
	t.Logf("%s leads %s after %s was killed", follower.name, took.Round(100*time.Millisecond), leader.name)
	if took > lease+3*retry {
		t.Errorf("took over after %s, beyond the %s lease and three retries", took, lease)
	}

	expectShares(ctx, t, hub, key, unhealthyAfter+time.Minute, "gke-east's share in gke-west", map[string]int32{"gke-west": 6})
	if got, _ := shares(ctx, t, hub, key); !got["gke-east"].FailedOver {
		t.Errorf("gke-east not failed over: %+v", got["gke-east"])
	}
	// Settle, then count: one failover, one change to the survivor, nothing deleted.
	time.Sleep(5 * time.Second)
	failovers := failoverEvents(ctx, t, hub, key)
	if failovers != 1 {
		t.Errorf("%d FailingOver events, want exactly one", failovers)
	}
	after, err := modelDeployment(ctx, west, key)
	if err != nil {
		t.Fatalf("gke-west's model Deployment: %v", err)
	}
	if after.UID != dep.UID || after.Generation != dep.Generation+1 {
		t.Errorf("gke-west's model Deployment: uid %s generation %d, before %s generation %d: want the same object changed once", after.UID, after.Generation, dep.UID, dep.Generation)
	}
	poolAfter := &infv1.InferencePool{}
	if err := west.Get(ctx, key, poolAfter); err != nil || poolAfter.UID != pool.UID || poolAfter.Generation != pool.Generation {
		t.Errorf("gke-west's InferencePool rewritten or gone: %v (generation %d -> %d)", err, pool.Generation, poolAfter.Generation)
	}
	// The lost region's objects are still there when it returns.
	if err := east.Faults.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := modelDeployment(ctx, east.Client, key); err != nil {
		t.Errorf("gke-east's model Deployment after the region returned: %v", err)
	}
}
