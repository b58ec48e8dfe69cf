package controllers

import (
	"context"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	mcreconcile "sigs.k8s.io/multicluster-runtime/pkg/reconcile"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// laggingClient serves the next read of a service from an older copy, as a cache that
// has not seen the reader's own last write yet.
type laggingClient struct {
	client.Client
	next *v1alpha1.FleetInferenceService
}

func (l *laggingClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if s, ok := obj.(*v1alpha1.FleetInferenceService); ok && l.next != nil {
		l.next.DeepCopyInto(s)
		l.next = nil
		return nil
	}
	return l.Client.Get(ctx, key, obj, opts...)
}

// TestOutcomeOnStaleCopy: a member's ready replicas go 1, 2, 1, and placement takes the
// last outcome on a copy of the service read before its write of the second (its cache
// lags). The copy already shows 1: nothing seems to change, yet the stored status says
// 2. The outcome must still be written, not taken as written.
func TestOutcomeOnStaleCopy(t *testing.T) {
	env := testenv.Start(t, testenv.CRDs())
	ctx := context.Background()
	c := env.Client
	kc, err := testenv.Kubeconfig(env.Config, "west")
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.RegisterMember(ctx, c, "west", "europe-west3", nil, kc); err != nil {
		t.Fatal(err)
	}
	svc := createService(ctx, t, c, 1, v1alpha1.PlacementSpec{Clusters: []v1alpha1.ClusterPlacement{{Name: "west"}}})
	key := client.ObjectKeyFromObject(svc)
	hub := &laggingClient{Client: c}
	reports := &Reports{}
	r := &Placement{
		Hub: hub, APIReader: c, Registry: &fleet.Registry{Reader: c, Namespace: fleet.RegistrationNamespace},
		Clock: &GenerationClock{}, Reports: reports, Now: time.Now, Resync: time.Minute,
	}
	read := func() *v1alpha1.FleetInferenceService {
		t.Helper()
		got := &v1alpha1.FleetInferenceService{}
		if err := c.Get(ctx, key, got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	reconcileOnce := func() {
		t.Helper()
		if _, err := r.Reconcile(ctx, mcreconcile.Request{Request: reconcile.Request{NamespacedName: key}}); err != nil {
			t.Fatal(err)
		}
	}
	report := func(ready int32) {
		t.Helper()
		s := read()
		reports.Put(s, "west", &v1alpha1.ClusterStatus{
			Name: "west", Region: "europe-west3", ObservedGeneration: s.Generation, Reason: ReasonSynced,
			Reachable: true, Health: v1alpha1.Healthy, DesiredReplicas: 1, ReadyReplicas: ready,
		})
	}
	westReady := func() int32 {
		t.Helper()
		e, ok := read().Status.Cluster("west")
		if !ok {
			t.Fatal("no entry for west")
		}
		return e.ReadyReplicas
	}

	reconcileOnce() // the decision
	report(1)
	reconcileOnce()
	lagging := read()
	report(2)
	reconcileOnce()
	if got := westReady(); got != 2 {
		t.Fatalf("west's ready replicas %d, want 2", got)
	}
	report(1)
	hub.next = lagging
	reconcileOnce()
	if got := westReady(); got != 1 {
		t.Errorf("west's ready replicas %d after its outcome of 1 was taken on a lagging copy, want 1", got)
	}
}
