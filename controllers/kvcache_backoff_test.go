package controllers

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"

	"github.com/inferfleet/inferfleet/api/scheme"
	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

// countingClusters fails every GetCluster and counts them per cluster.
type countingClusters struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingClusters) GetCluster(_ context.Context, name multicluster.ClusterName) (cluster.Cluster, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[string(name)]++
	return nil, errors.New("no answer")
}

// TestKVCacheBackoff: a cluster whose model servers do not answer is read after 1, 2, 4 and
// then every 8 skipped rounds, and at once when its ready replicas change.
func TestKVCacheBackoff(t *testing.T) {
	svc := &v1alpha1.FleetInferenceService{
		ObjectMeta: metav1.ObjectMeta{Name: "llama", Namespace: "serving"},
		Status: v1alpha1.FleetInferenceServiceStatus{Clusters: []v1alpha1.ClusterStatus{
			{Name: "west", Reachable: true, DesiredReplicas: 2, ReadyReplicas: 2},
			{Name: "east", Reachable: true, DesiredReplicas: 0},
			{Name: "central", Reachable: false, DesiredReplicas: 2},
		}},
	}
	hub := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(svc).WithStatusSubresource(svc).Build()
	clusters := &countingClusters{calls: map[string]int{}}
	k := &KVCacheReader{Hub: hub, Clusters: clusters}
	ctx := context.Background()
	var reads []int
	round := 0
	readRound := func() {
		round++
		before := clusters.calls["west"]
		k.readAll(ctx)
		if clusters.calls["west"] != before {
			reads = append(reads, round)
		}
	}
	for range 20 {
		readRound()
	}
	if want := []int{1, 3, 6, 11, 20}; !slices.Equal(reads, want) {
		t.Errorf("west read in rounds %v, want %v", reads, want)
	}
	if clusters.calls["east"] != 0 || clusters.calls["central"] != 0 {
		t.Errorf("read clusters with no replicas or unreachable: %v", clusters.calls)
	}

	// New ready replicas: read in the next round, whatever the backoff.
	if err := hub.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
		t.Fatal(err)
	}
	svc.Status.Clusters[0].ReadyReplicas = 1
	if err := hub.Status().Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	reads = nil
	readRound()
	if !slices.Equal(reads, []int{21}) {
		t.Errorf("after ready replicas changed, reads in rounds %v, want [21]", reads)
	}

	// A series that goes from the status forgets its backoff.
	svc.Status.Clusters[0].DesiredReplicas = 0
	if err := hub.Status().Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	readRound()
	if len(k.back) != 0 {
		t.Errorf("backoff kept for series no longer read: %v", k.back)
	}
}
