// Command hub is the inferfleet controller manager. It runs in the fleet's config cluster,
// discovers member clusters and keeps every FleetInferenceService in sync across them.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/inferfleet/inferfleet/controllers"
	"github.com/inferfleet/inferfleet/fleet"
)

func main() {
	var o controllers.HubOptions
	flag.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; 0 disables it.")
	flag.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	flag.BoolVar(&o.LeaderElect, "leader-elect", false, "Elect a leader so that only one hub replica reconciles at a time.")
	flag.StringVar(&o.LeaderElectionNS, "leader-election-namespace", fleet.RegistrationNamespace, "Namespace of the leader-election Lease.")
	flag.StringVar(&o.ClusterNamespace, "cluster-namespace", fleet.RegistrationNamespace,
		"Namespace of the kubeconfig Secrets that register member clusters (label "+fleet.KubeconfigLabel+"=true).")
	flag.DurationVar(&o.MemberTimeout, "member-timeout", 15*time.Second, "Bound on one member's sync, so a slow member never holds the others.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		ctrl.Log.Error(err, "hub stopped")
		os.Exit(1)
	}
}

func run(ctx context.Context, o controllers.HubOptions) error {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("hub kubeconfig: %w", err)
	}
	mgr, err := controllers.NewHub(ctx, cfg, o)
	if err != nil {
		return err
	}
	ctrl.Log.WithName("hub").Info("starting", "clusterNamespace", o.ClusterNamespace, "leaderElect", o.LeaderElect)
	return mgr.Start(ctx)
}
