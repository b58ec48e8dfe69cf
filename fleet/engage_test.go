package fleet

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"
)

// flakyAware fails its first fail engagements, then succeeds.
type flakyAware struct {
	mu    sync.Mutex
	fail  int
	calls int
	ok    chan struct{}
}

func (a *flakyAware) Engage(context.Context, multicluster.ClusterName, cluster.Cluster) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.calls <= a.fail {
		return errors.New("get informer failed: context deadline exceeded")
	}
	close(a.ok)
	return nil
}

func (a *flakyAware) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

// TestEngageInBackground: a member whose engagement fails is retried with backoff until it
// succeeds, and not after; a cluster removed meanwhile (its context cancelled) is no longer
// retried.
func TestEngageInBackground(t *testing.T) {
	saved := EngageBackoff
	EngageBackoff.Duration, EngageBackoff.Cap = 10*time.Millisecond, 40*time.Millisecond
	t.Cleanup(func() { EngageBackoff = saved })

	t.Run("retried until engaged", func(t *testing.T) {
		a := &flakyAware{fail: 3, ok: make(chan struct{})}
		before := failuresOf(t, "hung")
		EngageInBackground(context.Background(), a, "hung", nil, logr.Discard())
		select {
		case <-a.ok:
		case <-time.After(10 * time.Second):
			t.Fatalf("not engaged after %d attempts", a.count())
		}
		time.Sleep(200 * time.Millisecond)
		if n := a.count(); n != 4 {
			t.Errorf("%d engagements, want 3 failed and 1 that succeeded", n)
		}
		if got := failuresOf(t, "hung") - before; got != 3 {
			t.Errorf("engage failures metric rose by %v, want 3", got)
		}
	})

	t.Run("stops with the cluster's context", func(t *testing.T) {
		a := &flakyAware{fail: 1 << 30, ok: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		EngageInBackground(ctx, a, "gone", nil, logr.Discard())
		deadline := time.Now().Add(10 * time.Second)
		for a.count() < 2 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		time.Sleep(100 * time.Millisecond)
		n := a.count()
		time.Sleep(300 * time.Millisecond)
		if a.count() != n {
			t.Errorf("still engaging after the cluster was removed: %d then %d", n, a.count())
		}
	})
}

func failuresOf(t *testing.T, cluster string) float64 {
	t.Helper()
	m := &dto.Metric{}
	if err := engageFailures.WithLabelValues(cluster).Write(m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestAnswers: a member is engaged only once its API server answers something, even a
// refusal; one that accepts connections and answers nothing is not.
func TestAnswers(t *testing.T) {
	saved := EngageProbeTimeout
	EngageProbeTimeout = 300 * time.Millisecond
	t.Cleanup(func() { EngageProbeTimeout = saved })
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	t.Cleanup(func() { close(release); hung.Close() })
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}`))
	}))
	t.Cleanup(forbidden.Close)
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	t.Cleanup(ok.Close)
	ctx := context.Background()
	if err := answers(ctx, &rest.Config{Host: hung.URL}); err == nil {
		t.Error("a server that answers nothing counts as answering")
	}
	for name, url := range map[string]string{"ok": ok.URL, "forbidden": forbidden.URL} {
		if err := answers(ctx, &rest.Config{Host: url}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
