// Command hub is the inferfleet controller manager. It runs in the fleet's config cluster,
// discovers member clusters and keeps every FleetInferenceService in sync across them.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	mcmanager "sigs.k8s.io/multicluster-runtime/pkg/manager"
	"sigs.k8s.io/multicluster-runtime/providers/kubeconfig"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/fleet"
)

// +kubebuilder:rbac:groups=fleet.inferfleet.dev,resources=fleetinferenceservices,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=fleet.inferfleet.dev,resources=fleetinferenceservices/status;fleetinferenceservices/finalizers,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete

type options struct {
	metricsAddr      string
	probeAddr        string
	leaderElect      bool
	leaderElectionNS string
	clusterNamespace string
}

func main() {
	var o options
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; 0 disables it.")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	flag.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader so that only one hub replica reconciles at a time.")
	flag.StringVar(&o.leaderElectionNS, "leader-election-namespace", fleet.RegistrationNamespace, "Namespace of the leader-election Lease.")
	flag.StringVar(&o.clusterNamespace, "cluster-namespace", fleet.RegistrationNamespace,
		"Namespace of the kubeconfig Secrets that register member clusters (label "+fleet.KubeconfigLabel+"=true).")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		ctrl.Log.Error(err, "hub stopped")
		os.Exit(1)
	}
}

func newScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func run(ctx context.Context, o options) error {
	log := ctrl.Log.WithName("hub")
	scheme, err := newScheme()
	if err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("hub kubeconfig: %w", err)
	}

	provider := kubeconfig.New(kubeconfig.Options{
		Namespace:             o.clusterNamespace,
		KubeconfigSecretLabel: fleet.KubeconfigLabel,
		KubeconfigSecretKey:   fleet.KubeconfigKey,
	})
	renew := 10 * time.Second
	mgr, err := mcmanager.New(cfg, provider, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "inferfleet-hub",
		LeaderElectionNamespace: o.leaderElectionNS,
		RenewDeadline:           &renew,
	})
	if err != nil {
		return fmt.Errorf("new manager: %w", err)
	}
	if err := provider.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("cluster discovery: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	log.Info("starting", "clusterNamespace", o.clusterNamespace, "leaderElect", o.leaderElect)
	return mgr.Start(ctx)
}
