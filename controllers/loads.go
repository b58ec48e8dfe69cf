package controllers

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/source"
	mcreconcile "sigs.k8s.io/multicluster-runtime/pkg/reconcile"

	"github.com/inferfleet/inferfleet/fleet"
)

// Loads hands the model servers' load, read each round by the KVCacheReader, to
// placement, which autoscales the services that ask for it (spec.autoscaling). Each
// service keeps only its latest round; a new round wakes placement for it.
type Loads struct {
	mu    sync.Mutex
	by    map[types.NamespacedName]Load
	queue workqueue.TypedRateLimitingInterface[mcreconcile.Request]
}

// Load is one round's reading of a service's model servers.
type Load struct {
	// At is when the round started.
	At time.Time
	// UID is the service's, so that a service recreated under the same name does not
	// inherit its predecessor's load.
	UID types.UID
	// Clusters are the servers read in each cluster. A cluster with replicas that is
	// missing was not read this round (unreachable, or its servers did not answer).
	Clusters map[string]fleet.Servers
	// Pickers, for a service that scales to zero, are the requests each cluster's
	// endpoint pickers received since the previous round. A cluster missing was not read
	// this round or the one before (PickerErrors says why, when it failed).
	Pickers      map[string]float64
	PickerErrors map[string]string
}

// NewLoads returns an empty store.
func NewLoads() *Loads { return &Loads{by: map[types.NamespacedName]Load{}} }

// Put records a service's round and wakes placement for it.
func (l *Loads) Put(key types.NamespacedName, load Load) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.by[key] = load
	if l.queue != nil {
		l.queue.Add(placementRequest(key))
	}
}

// Get is a service's latest round, if any was read for this UID.
func (l *Loads) Get(key types.NamespacedName, uid types.UID) (Load, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	load, ok := l.by[key]
	if !ok || load.UID != uid {
		return Load{}, false
	}
	return load, true
}

// forget drops a service that is gone.
func (l *Loads) forget(key types.NamespacedName) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.by, key)
}

// source wakes placement for each service whose load is read.
func (l *Loads) source() source.TypedSource[mcreconcile.Request] {
	return source.TypedFunc[mcreconcile.Request](func(_ context.Context, q workqueue.TypedRateLimitingInterface[mcreconcile.Request]) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.queue = q
		for key := range l.by {
			q.Add(placementRequest(key))
		}
		return nil
	})
}
