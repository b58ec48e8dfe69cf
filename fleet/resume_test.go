package fleet_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"

	"github.com/inferfleet/inferfleet/api/scheme"
	"github.com/inferfleet/inferfleet/fleet"
)

// notConnected is a provider that has connected to no cluster (a hub that just started).
type notConnected struct{}

func (notConnected) GetCluster(context.Context, multicluster.ClusterName) (cluster.Cluster, error) {
	return nil, multicluster.ErrClusterNotFound
}

type listed []fleet.Cluster

func (l listed) List(context.Context) ([]fleet.Cluster, error) { return l, nil }

// TestMonitorResumesRecordedOutage: a hub that starts while a member it recorded as
// unreachable is still not connected takes the outage up from the recorded time, without
// the connect grace a cluster not heard of gets; a cluster with nothing recorded gets the
// grace (unknown, not unreachable). A cluster recorded reachable stays reachable since
// its recorded time: a failback waiting on it is not timed again from the restart.
func TestMonitorResumesRecordedOutage(t *testing.T) {
	lost := time.Now().Add(-20 * time.Second).UTC().Truncate(time.Second)
	lostMs := lost.Add(-1234 * time.Millisecond)
	reg := func(name string, annotations map[string]string) *corev1.Secret {
		s := fleet.RegistrationSecret(name, fleet.RegistrationNamespace, "r", []byte("kubeconfig"), nil)
		s.Annotations = annotations
		return s
	}
	hub := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(
		reg("west", map[string]string{fleet.AnnotationReachable: "false", fleet.AnnotationReachableSince: lost.Format(time.RFC3339), fleet.AnnotationReachReason: "readyz: context deadline exceeded"}),
		// A hub of this version records the millisecond.
		reg("north", map[string]string{fleet.AnnotationReachable: "false", fleet.AnnotationReachableSince: lostMs.Format(fleet.SinceFormat), fleet.AnnotationReachReason: "readyz: context deadline exceeded"}),
		reg("east", nil),
		reg("south", map[string]string{fleet.AnnotationReachable: "true", fleet.AnnotationReachableSince: lostMs.Format(fleet.SinceFormat), fleet.AnnotationReachReason: ""}),
	).Build()
	m := fleet.NewMonitor(notConnected{}, listed{{Name: "west"}, {Name: "north"}, {Name: "east"}, {Name: "south"}})
	m.Hub, m.Namespace, m.Interval = hub, fleet.RegistrationNamespace, 20*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Start(ctx) }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	<-done

	r, ok := m.Get("west")
	// Whole seconds (an older hub's record) are marked so, for timers to run from the end
	// of that second.
	if !ok || r.Reachable || !r.Since.Equal(lost) || !r.Rounded {
		t.Errorf("west after the restart: %+v (known %v), want unreachable since the recorded %s, rounded", r, ok, lost)
	}
	if r, ok := m.Get("north"); !ok || r.Reachable || !r.Since.Equal(lostMs) || r.Rounded {
		t.Errorf("north after the restart: %+v (known %v), want unreachable since the recorded %s to the millisecond", r, ok, lostMs)
	}
	if _, ok := m.Get("east"); ok {
		t.Errorf("east, with nothing recorded and not connected yet, has a state within the connect grace")
	}
	if r, ok := m.Get("south"); !ok || !r.Reachable || !r.Since.Equal(lostMs) {
		t.Errorf("south after the restart: %+v (known %v), want reachable since the recorded %s", r, ok, lostMs)
	}
	s := &corev1.Secret{}
	if err := hub.Get(context.Background(), client.ObjectKey{Namespace: fleet.RegistrationNamespace, Name: "west"}, s); err != nil {
		t.Fatal(err)
	}
	if got := s.Annotations[fleet.AnnotationReachableSince]; got != lost.Format(time.RFC3339) {
		t.Errorf("recorded since %q, want the outage's start %s kept", got, lost.Format(time.RFC3339))
	}
}
