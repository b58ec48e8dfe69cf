package controllers

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	clocktesting "k8s.io/utils/clock/testing"
	mcreconcile "sigs.k8s.io/multicluster-runtime/pkg/reconcile"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

func TestReports(t *testing.T) {
	svc := &v1alpha1.FleetInferenceService{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", UID: "u1"}}
	svc.Status.Clusters = []v1alpha1.ClusterStatus{{Name: "b", ReadyReplicas: 1}, {Name: "d", ReadyReplicas: 1}}
	r := &Reports{}

	// An outcome equal to the stored entry, or removing an entry that is not there, waits
	// for nothing.
	r.Put(svc, "b", &v1alpha1.ClusterStatus{Name: "b", ReadyReplicas: 1})
	r.Put(svc, "x", nil)
	if got := r.merge(svc); got != nil {
		t.Fatalf("unchanged outcomes are pending: %v", got)
	}

	r.Put(svc, "c", &v1alpha1.ClusterStatus{Name: "c", ReadyReplicas: 2})
	r.Put(svc, "a", &v1alpha1.ClusterStatus{Name: "a"})
	r.Put(svc, "d", nil)
	if e, ok := r.Latest(svc, "c"); !ok || e.ReadyReplicas != 2 {
		t.Errorf("Latest(c) = %+v, %v; want the pending outcome", e, ok)
	}
	if _, ok := r.Latest(svc, "d"); ok {
		t.Error("Latest(d) found an entry whose removal is pending")
	}
	if e, ok := r.Latest(svc, "b"); !ok || e.ReadyReplicas != 1 {
		t.Errorf("Latest(b) = %+v, %v; want the stored entry", e, ok)
	}

	taken := r.merge(svc)
	names := func() []string {
		var out []string
		for _, c := range svc.Status.Clusters {
			out = append(out, c.Name)
		}
		return out
	}
	if d := cmp.Diff([]string{"a", "b", "c"}, names()); d != "" {
		t.Errorf("merged entries (-want +got):\n%s", d)
	}

	// An outcome reported while the status was being written stays for the next write.
	r.Put(svc, "c", &v1alpha1.ClusterStatus{Name: "c", ReadyReplicas: 3})
	r.written(svc.UID, taken)
	if e, ok := r.Latest(svc, "c"); !ok || e.ReadyReplicas != 3 {
		t.Errorf("Latest(c) after the write = %+v, %v; want the newer outcome", e, ok)
	}
	if got := r.merge(svc); len(got) != 1 {
		t.Errorf("pending after the write = %v; want c's newer outcome only", got)
	}

	// What was written stays the latest word while the service read lags the write.
	stale := svc.DeepCopy()
	stale.Status.Clusters = nil
	if e, ok := r.Latest(stale, "a"); !ok || e.Name != "a" {
		t.Errorf("Latest(a) on a stale read = %+v, %v; want the written outcome", e, ok)
	}
	r.Put(stale, "a", &v1alpha1.ClusterStatus{Name: "a"})
	if _, ok := r.merge(svc)["a"]; ok {
		t.Error("an outcome equal to the written one is pending again")
	}

	// A service that is gone leaves nothing behind.
	r.forget(types.NamespacedName{Namespace: "ns", Name: "s"})
	if got := r.merge(svc); got != nil {
		t.Errorf("pending after forget = %v", got)
	}
	if len(r.services) != 0 {
		t.Errorf("kept after forget: %v", r.services)
	}
}

// TestReportsPacing: a lone outcome is written after rollupDelay; outcomes that follow a
// write wait until minWriteInterval has passed since it.
func TestReportsPacing(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
	q := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[mcreconcile.Request](),
		workqueue.TypedRateLimitingQueueConfig[mcreconcile.Request]{Clock: fc})
	defer q.ShutDown()
	r := &Reports{now: fc.Now}
	if err := r.source().Start(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	svc := &v1alpha1.FleetInferenceService{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", UID: "u1"}}
	// queued waits for the delaying queue's goroutine to move what is due.
	queued := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for q.Len() != want && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if q.Len() != want {
			t.Fatalf("queued %d, want %d at %v", q.Len(), want, fc.Now())
		}
	}
	step := func(d time.Duration) {
		fc.Step(d)
		time.Sleep(10 * time.Millisecond) // the queue's goroutine sees the step
	}

	r.Put(svc, "a", &v1alpha1.ClusterStatus{Name: "a", ReadyReplicas: 1})
	step(rollupDelay - time.Millisecond)
	queued(0)
	step(time.Millisecond)
	queued(1)
	item, _ := q.Get()
	q.Done(item)
	r.written(svc.UID, r.merge(svc))

	// Written just now: the next outcome waits for minWriteInterval.
	r.Put(svc, "b", &v1alpha1.ClusterStatus{Name: "b", ReadyReplicas: 1})
	step(rollupDelay)
	queued(0)
	step(minWriteInterval - rollupDelay)
	queued(1)
}
