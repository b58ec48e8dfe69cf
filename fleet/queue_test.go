package fleet

import (
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
)

func newTestQueue(t *testing.T, perCluster int) *ClusterQueue[string] {
	t.Helper()
	q := NewClusterQueue(priorityqueue.New[string]("test"), func(item string) string {
		c, _, _ := strings.Cut(item, "/")
		return c
	}, perCluster)
	t.Cleanup(func() {
		if !q.ShuttingDown() {
			q.ShutDown()
		}
	})
	return q
}

// next is the item a Get hands out within wait, if any; a Get still blocked then is
// released by shutting the queue down.
func next(q *ClusterQueue[string], wait time.Duration) (string, bool) {
	got := make(chan string, 1)
	go func() {
		if item, shutdown := q.Get(); !shutdown {
			got <- item
		}
	}()
	select {
	case item := <-got:
		return item, true
	case <-time.After(wait):
		q.ShutDown()
		return "", false
	}
}

// get fails the test if no item goes out within a second.
func get(t *testing.T, q *ClusterQueue[string]) string {
	t.Helper()
	item, ok := next(q, time.Second)
	if !ok {
		t.Fatal("no item went out within a second")
	}
	return item
}

// nothing fails the test if an item goes out within wait.
func nothing(t *testing.T, q *ClusterQueue[string], wait time.Duration) {
	t.Helper()
	if item, ok := next(q, wait); ok {
		t.Fatalf("%s went out while it should have waited", item)
	}
}

func TestClusterQueueLimitsEachCluster(t *testing.T) {
	q := newTestQueue(t, 2)
	for _, item := range []string{"a/1", "a/2", "a/3", "a/4", "b/1"} {
		q.Add(item)
		time.Sleep(5 * time.Millisecond) // the inner queue orders by arrival
	}
	// a is at its limit after two; b's item still goes out, then a's wait.
	for _, want := range []string{"a/1", "a/2", "b/1"} {
		if got := get(t, q); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	if n := q.Len(); n != 2 {
		t.Errorf("Len = %d with a/3 and a/4 waiting, want 2", n)
	}
	q.Done("b/1") // another cluster's Done frees nothing of a's
	q.Done("a/2")
	if got := get(t, q); got != "a/3" {
		t.Fatalf("after a/2 was done: got %s, want a/3 (a's oldest waiting)", got)
	}
	nothing(t, q, 100*time.Millisecond)
}

func TestClusterQueueRunsAnItemAddedWhileOutOnceMore(t *testing.T) {
	q := newTestQueue(t, 1)
	q.Add("a/1")
	if got := get(t, q); got != "a/1" {
		t.Fatalf("got %s, want a/1", got)
	}
	q.Add("a/1") // changed while being processed
	q.Add("a/2")
	time.Sleep(50 * time.Millisecond)
	q.Done("a/1")
	first, second := get(t, q), ""
	q.Done(first)
	second = get(t, q)
	if first != "a/2" || second != "a/1" {
		t.Fatalf("after a/1 was done got %s then %s, want a/2 (waiting) then a/1 (added again)", first, second)
	}
}

func TestClusterQueueShutDownReleasesGetters(t *testing.T) {
	q := newTestQueue(t, 1)
	done := make(chan bool)
	go func() {
		_, shutdown := q.Get()
		done <- shutdown
	}()
	time.Sleep(20 * time.Millisecond)
	q.ShutDown()
	select {
	case shutdown := <-done:
		if !shutdown {
			t.Fatal("Get returned an item from an empty queue being shut down")
		}
	case <-time.After(time.Second):
		t.Fatal("Get still blocked a second after ShutDown")
	}
}
