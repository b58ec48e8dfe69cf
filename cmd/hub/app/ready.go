package app

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/inferfleet/inferfleet/fleet"
)

// readiness is the hub's /readyz: ready once the hub's caches have synced and the member
// registry has been read, so a rolling update or a Service never counts a hub that would
// still act on an empty view of the fleet. Every replica runs it (not only the leader): a
// standby is ready to take over once its caches are.
type readiness struct {
	cache    cache.Cache
	registry *fleet.Registry
	ready    atomic.Bool
	why      atomic.Value // string: what it waits for
}

func newReadiness(c cache.Cache, registry *fleet.Registry) *readiness {
	r := &readiness{cache: c, registry: registry}
	r.why.Store("the hub's caches have not synced yet")
	return r
}

// Start waits for the caches, then for one successful read of the registry.
func (r *readiness) Start(ctx context.Context) error {
	if !r.cache.WaitForCacheSync(ctx) {
		return nil // stopping
	}
	r.why.Store("the member registry has not been read yet")
	_ = wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		// A cached read waits for its informer: bounded, so the reason stays current.
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := r.registry.List(lctx); err != nil {
			r.why.Store("the member registry cannot be read: " + err.Error())
			log.FromContext(ctx).Info("not ready: member registry not read", "error", err.Error())
			return false, nil
		}
		return true, nil
	})
	if ctx.Err() == nil {
		r.ready.Store(true)
	}
	return nil
}

// NeedLeaderElection is false: every replica reports its own readiness.
func (r *readiness) NeedLeaderElection() bool { return false }

// Check is the healthz.Checker of /readyz.
func (r *readiness) Check(*http.Request) error {
	if r.ready.Load() {
		return nil
	}
	return errors.New(r.why.Load().(string))
}
