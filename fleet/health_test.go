package fleet_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"

	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/fleet"
)

type oneCluster struct {
	name string
	cl   cluster.Cluster
}

func (o oneCluster) GetCluster(_ context.Context, name multicluster.ClusterName) (cluster.Cluster, error) {
	if string(name) != o.name {
		return nil, errors.New("cluster not found")
	}
	return o.cl, nil
}

func (o oneCluster) List(context.Context) ([]fleet.Cluster, error) {
	return []fleet.Cluster{{Name: o.name}, {Name: "never-engaged"}}, nil
}

// TestMonitorSeesAPIServerStop probes a real API server, stops it, and expects the
// monitor to report it unreachable (with an event) within a few probe intervals.
func TestMonitorSeesAPIServerStop(t *testing.T) {
	env := framework.StartEnv(t, nil)
	cl, err := cluster.New(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	m := fleet.NewMonitor(oneCluster{name: "west", cl: cl}, oneCluster{name: "west", cl: cl})
	m.Interval, m.Timeout, m.ConnectGrace = 200*time.Millisecond, time.Second, 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Start(ctx) }()

	wait := func(what string, want bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if r, ok := m.Get("west"); ok && r.Reachable == want {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		r, _ := m.Get("west")
		t.Fatalf("%s: reachability %+v", what, r)
	}
	wait("reachable at first", true)
	if r, ok := m.Get("never-engaged"); !ok || r.Reachable {
		t.Errorf("a registered cluster that is not connected must be unreachable: %+v", r)
	}
	drain := func() {
		for {
			select {
			case <-m.Changes():
			default:
				return
			}
		}
	}
	drain()
	stopped := time.Now()
	if err := env.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	wait("unreachable after stop", false)
	t.Logf("unreachable seen %s after the stop", time.Since(stopped).Round(10*time.Millisecond))
	select {
	case <-m.Changes():
	case <-time.After(time.Second):
		t.Error("no change event for the reachability change")
	}
	r, _ := m.Get("west")
	if r.Since.Before(stopped) || r.Reason == "" {
		t.Errorf("since %s (stopped %s), reason %q", r.Since, stopped, r.Reason)
	}
}
