package fleet

import (
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
)

// ClusterQueue is a controller work queue that hands out at most PerCluster items of one
// cluster at a time. Each cluster's items go out in the order the inner queue readied
// them, and the other clusters' items go on meanwhile. So a service created on a fleet
// reaches each member after the services created before it, instead of every sync
// sharing the CPU and all finishing together. And a hung member holds at most PerCluster
// workers, however many of its syncs are waiting.
//
// Dedup, delays, rate limiting and priorities stay with the inner queue. An item handed on
// to a waiting line counts as in progress there: adding it again runs it once more after
// Done, as for any item being processed.
type ClusterQueue[T comparable] struct {
	priorityqueue.PriorityQueue[T]
	cluster    func(T) string
	perCluster int

	mu      sync.Mutex
	cond    *sync.Cond
	ready   []queued[T]            // may go out now, oldest first
	waiting map[string][]queued[T] // per cluster, past its limit, oldest first
	running map[string]int         // per cluster: handed out or ready
	closed  bool
}

type queued[T comparable] struct {
	item     T
	priority int
}

// NewClusterQueue wraps inner: cluster names each item's cluster, perCluster (at least 1)
// bounds how many of one cluster's items are out at once.
func NewClusterQueue[T comparable](inner priorityqueue.PriorityQueue[T], cluster func(T) string, perCluster int) *ClusterQueue[T] {
	q := &ClusterQueue[T]{
		PriorityQueue: inner,
		cluster:       cluster,
		perCluster:    max(perCluster, 1),
		waiting:       map[string][]queued[T]{},
		running:       map[string]int{},
	}
	q.cond = sync.NewCond(&q.mu)
	go q.dispatch()
	return q
}

// dispatch moves items from the inner queue to the ready line, or to their cluster's
// waiting line while the cluster is at its limit.
func (q *ClusterQueue[T]) dispatch() {
	for {
		item, priority, shutdown := q.PriorityQueue.GetWithPriority()
		q.mu.Lock()
		if shutdown {
			q.closed = true
			q.cond.Broadcast()
			q.mu.Unlock()
			return
		}
		c := q.cluster(item)
		if q.running[c] < q.perCluster {
			q.running[c]++
			q.ready = append(q.ready, queued[T]{item, priority})
			q.cond.Signal()
		} else {
			q.waiting[c] = append(q.waiting[c], queued[T]{item, priority})
		}
		q.mu.Unlock()
	}
}

// GetWithPriority blocks until an item may go out, or the queue is shut down and
// nothing is left to hand out.
func (q *ClusterQueue[T]) GetWithPriority() (T, int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.ready) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.ready) == 0 {
		var zero T
		return zero, 0, true
	}
	next := q.ready[0]
	q.ready[0] = queued[T]{}
	q.ready = q.ready[1:]
	return next.item, next.priority, false
}

// Get is GetWithPriority without the priority.
func (q *ClusterQueue[T]) Get() (T, bool) {
	item, _, shutdown := q.GetWithPriority()
	return item, shutdown
}

// Done marks item processed and lets the next waiting item of its cluster go out.
func (q *ClusterQueue[T]) Done(item T) {
	q.PriorityQueue.Done(item)
	q.mu.Lock()
	defer q.mu.Unlock()
	c := q.cluster(item)
	if w := q.waiting[c]; len(w) > 0 {
		q.ready = append(q.ready, w[0])
		if len(w) == 1 {
			delete(q.waiting, c)
		} else {
			q.waiting[c] = w[1:]
		}
		q.cond.Signal()
		return
	}
	if q.running[c]--; q.running[c] <= 0 {
		delete(q.running, c)
	}
}

// Len counts the items not yet handed out: in the inner queue, ready or waiting.
func (q *ClusterQueue[T]) Len() int {
	q.mu.Lock()
	n := len(q.ready)
	for _, w := range q.waiting {
		n += len(w)
	}
	q.mu.Unlock()
	return n + q.PriorityQueue.Len()
}
