package fleet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	mcmanager "sigs.k8s.io/multicluster-runtime/pkg/manager"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"
)

// engageFailures counts failed engagements per cluster.
var engageFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "inferfleet_cluster_engage_failures_total",
	Help: "Times the hub's controllers failed to start watching a member cluster (it is retried with backoff while the cluster stays registered).",
}, []string{"cluster"})

// EngageBackoff is how engagement is retried, for as long as the cluster is registered:
// from 1 s, doubling, to 30 s, then every 30 s (its DelayFunc keeps the cap once reached).
var EngageBackoff = wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: math.MaxInt32, Cap: 30 * time.Second}

// EngageInBackground engages cl with aware (the hub's controllers start watching it) in
// the background and retries with EngageBackoff until that succeeds or ctx, the cluster's
// own context, ends. It returns at once.
//
// Engagement starts informers, which need the member to answer; a member whose API server
// hangs fails it after its request timeout. Providers that drop a cluster whose engagement
// failed and add it again (multicluster-runtime's kubeconfig provider does) cycle it as
// long as the member hangs, and each cycle resets what the hub knows of it. Here the
// cluster stays registered meanwhile: member sync reaches it through its client and the
// health monitor probes it, so an unanswering member is seen as unreachable on the
// monitor's clock, whatever made the hub (re)connect to it.
func EngageInBackground(ctx context.Context, aware multicluster.Aware, name multicluster.ClusterName, cl cluster.Cluster, log logr.Logger) {
	delay := EngageBackoff.DelayFunc()
	go func() {
		failures := 0
		_ = delay.Until(ctx, true, true, func(ctx context.Context) (bool, error) {
			var err error
			if cl != nil {
				err = answers(ctx, cl.GetConfig())
			}
			if err == nil {
				err = aware.Engage(ctx, name, cl)
			}
			switch {
			case ctx.Err() != nil:
				return false, ctx.Err()
			case err == nil:
				if failures > 0 {
					log.Info("engaged cluster after retrying", "cluster", name, "failures", failures)
				}
				return true, nil
			}
			failures++
			engageFailures.WithLabelValues(string(name)).Inc()
			if failures == 1 {
				log.Error(err, "engaging cluster failed; the cluster stays registered and engagement is retried", "cluster", name)
			} else {
				log.V(1).Info("engaging cluster failed again", "cluster", name, "failures", failures, "error", err.Error())
			}
			return false, nil
		})
	}()
}

// EngageProbeTimeout bounds the request that checks a member answers before it is engaged.
var EngageProbeTimeout = 2 * time.Second

// answers checks that the cluster's API server answers at all (any HTTP answer will do)
// before it is engaged: engaging takes each controller's lock while the informers ask for
// the API's groups, so a member that hangs would hold up every other member's engagement
// for as long as its requests take to time out.
func answers(ctx context.Context, cfg *rest.Config) error {
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = EngageProbeTimeout
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	err = dc.RESTClient().Get().AbsPath("/readyz").MaxRetries(0).Do(ctx).Error()
	var status apierrors.APIStatus
	if err == nil || errors.As(err, &status) {
		return nil
	}
	return fmt.Errorf("the API server does not answer: %w", err)
}

// BackgroundEngage is a manager whose Engage engages in the background
// (EngageInBackground) and never fails. Given to a provider that removes clusters whose
// engagement fails (multicluster-runtime's kubeconfig provider), it keeps them registered.
type BackgroundEngage struct {
	mcmanager.Manager
	Log logr.Logger
}

// Engage starts engaging cl in the background and returns nil.
func (b BackgroundEngage) Engage(ctx context.Context, name multicluster.ClusterName, cl cluster.Cluster) error {
	EngageInBackground(ctx, b.Manager, name, cl, b.Log)
	return nil
}
