package controllers

import (
	"context"
	"sort"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	mcreconcile "sigs.k8s.io/multicluster-runtime/pkg/reconcile"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

// Reports carries member sync's per-cluster outcomes to placement, the one writer of a
// service's status.clusters: placement folds the outcomes waiting for a service into the
// same status write as its decision and their rollup, written rollupDelay after the first
// of them and at most once per minWriteInterval. Outcomes that arrive together share a
// write, and an outcome costs one status write, not an entry write and a rollup write,
// which keeps the hub's API server and the watchers of services (routing among them) out
// of the way of propagation.
//
// Reports remembers each cluster's latest outcome, written or not: member sync compares
// its next outcome with it (not with a cached status that may lag the last write), so an
// unchanged cluster wakes nothing and a changed one is never taken for unchanged.
// Outcomes live in memory only; a restarted hub syncs every member again and so reports
// afresh.
type Reports struct {
	mu       sync.Mutex
	services map[types.UID]*serviceReports
	queue    workqueue.TypedRateLimitingInterface[mcreconcile.Request]
	seq      uint64
	// now is the clock (tests pin it).
	now func() time.Time
}

// minWriteInterval paces the writes of one service's outcomes: members that finish one
// after another under load share a write at most this long after the previous one,
// instead of a write each. A lone change is written after rollupDelay.
const minWriteInterval = time.Second

type serviceReports struct {
	key      types.NamespacedName
	clusters map[string]report
	// lastWrite is when outcomes of this service were last written.
	lastWrite time.Time
}

// report is one cluster's latest outcome: its entry, or nil when the entry goes.
type report struct {
	entry   *v1alpha1.ClusterStatus
	seq     uint64
	written bool
}

// Latest is the cluster's entry as member sync last reported it, else as svc's status has
// it.
func (r *Reports) Latest(svc *v1alpha1.FleetInferenceService, cluster string) (v1alpha1.ClusterStatus, bool) {
	r.mu.Lock()
	var rep report
	s, ok := r.services[svc.UID]
	if ok {
		rep, ok = s.clusters[cluster]
	}
	r.mu.Unlock()
	if ok {
		if rep.entry == nil {
			return v1alpha1.ClusterStatus{}, false
		}
		return *rep.entry.DeepCopy(), true
	}
	return svc.Status.Cluster(cluster)
}

// Put reports a cluster's outcome for svc (nil: its entry goes) and has placement write it.
// An outcome equal to the latest one is dropped.
func (r *Reports) Put(svc *v1alpha1.FleetInferenceService, cluster string, entry *v1alpha1.ClusterStatus) {
	prev, had := r.Latest(svc, cluster)
	if entry == nil && !had || entry != nil && had && equality.Semantic.DeepEqual(prev, *entry) {
		return
	}
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	r.mu.Lock()
	if r.services == nil {
		r.services = map[types.UID]*serviceReports{}
	}
	s := r.services[svc.UID]
	if s == nil {
		s = &serviceReports{key: key, clusters: map[string]report{}}
		r.services[svc.UID] = s
	}
	if entry != nil {
		entry = entry.DeepCopy()
	}
	r.seq++
	s.clusters[cluster] = report{entry: entry, seq: r.seq}
	delay := max(rollupDelay, s.lastWrite.Add(minWriteInterval).Sub(r.clock()))
	q := r.queue
	r.mu.Unlock()
	if q != nil {
		q.AddAfter(placementRequest(key), delay)
	}
}

// merge puts the outcomes waiting for svc into its status.clusters (kept sorted by name)
// and returns them, for written once the status that holds them is stored.
func (r *Reports) merge(svc *v1alpha1.FleetInferenceService) map[string]report {
	r.mu.Lock()
	taken := map[string]report{}
	if s := r.services[svc.UID]; s != nil {
		for name, rep := range s.clusters {
			if !rep.written {
				taken[name] = rep
			}
		}
	}
	r.mu.Unlock()
	if len(taken) == 0 {
		return nil
	}
	entries := map[string]v1alpha1.ClusterStatus{}
	for _, e := range svc.Status.Clusters {
		entries[e.Name] = e
	}
	for name, rep := range taken {
		if rep.entry == nil {
			delete(entries, name)
			continue
		}
		entries[name] = *rep.entry.DeepCopy()
	}
	svc.Status.Clusters = make([]v1alpha1.ClusterStatus, 0, len(entries))
	for _, e := range entries {
		svc.Status.Clusters = append(svc.Status.Clusters, e)
	}
	sort.Slice(svc.Status.Clusters, func(i, j int) bool { return svc.Status.Clusters[i].Name < svc.Status.Clusters[j].Name })
	return taken
}

// written marks the outcomes a stored status now holds; one reported since waits on.
func (r *Reports) written(uid types.UID, taken map[string]report) {
	if len(taken) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.services[uid]
	if s == nil {
		return
	}
	s.lastWrite = r.clock()
	for name, rep := range taken {
		if cur, ok := s.clusters[name]; ok && cur.seq == rep.seq {
			cur.written = true
			s.clusters[name] = cur
		}
	}
}

// forget drops what is kept for a service that is gone.
func (r *Reports) forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for uid, s := range r.services {
		if s.key == key {
			delete(r.services, uid)
		}
	}
}

// forgetUID drops what is kept for a service whose deletion is complete.
func (r *Reports) forgetUID(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.services, uid)
}

func (r *Reports) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

// source is placement's watch on the reports: it wakes placement for every service with
// outcomes waiting, then for each one reported.
func (r *Reports) source() source.TypedSource[mcreconcile.Request] {
	return source.TypedFunc[mcreconcile.Request](func(_ context.Context, q workqueue.TypedRateLimitingInterface[mcreconcile.Request]) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.queue = q
		for _, s := range r.services {
			q.Add(placementRequest(s.key))
		}
		return nil
	})
}

func placementRequest(key types.NamespacedName) mcreconcile.Request {
	return mcreconcile.Request{Request: reconcile.Request{NamespacedName: key}}
}
