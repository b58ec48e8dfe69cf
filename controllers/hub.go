package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	infv1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"
	infv1alpha1 "sigs.k8s.io/gateway-api-inference-extension/apix/v1alpha1"
	infv1alpha2 "sigs.k8s.io/gateway-api-inference-extension/apix/v1alpha2"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	mcmanager "sigs.k8s.io/multicluster-runtime/pkg/manager"
	mcreconcile "sigs.k8s.io/multicluster-runtime/pkg/reconcile"
	"sigs.k8s.io/multicluster-runtime/providers/kubeconfig"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/controllers/render"
	"github.com/inferfleet/inferfleet/fleet"
)

// +kubebuilder:rbac:groups=fleet.inferfleet.dev,resources=fleetinferenceservices,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=fleet.inferfleet.dev,resources=fleetinferenceservices/status;fleetinferenceservices/finalizers,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gateways;httproutes,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=networking.gke.io,resources=healthcheckpolicies;gcpbackendpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=inference.networking.x-k8s.io,resources=inferencepoolimports,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=inference.networking.x-k8s.io,resources=inferencepoolimports/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete

// HubOptions configures the hub manager.
type HubOptions struct {
	MetricsAddr      string
	ProbeAddr        string
	LeaderElect      bool
	LeaderElectionNS string
	// ClusterNamespace holds the kubeconfig Secrets that register members.
	ClusterNamespace string
	// MemberTimeout bounds the work on one member.
	MemberTimeout time.Duration
	// ProbeInterval is how often each member's API server is probed (default 2s).
	ProbeInterval time.Duration
	// SeveralPerProcess lets tests run more than one hub in a process (controller names
	// are otherwise unique per process, for their metrics).
	SeveralPerProcess bool
}

// Scheme is every type the hub reads or writes typed.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, infv1.Install, infv1alpha1.Install, infv1alpha2.Install, gwv1.Install} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

// NewHub builds the hub's multicluster manager: member discovery from kubeconfig Secrets
// and every reconciler. Start it with Start(ctx).
func NewHub(ctx context.Context, cfg *rest.Config, o HubOptions) (mcmanager.Manager, error) {
	if o.ClusterNamespace == "" {
		o.ClusterNamespace = fleet.RegistrationNamespace
	}
	if o.MemberTimeout == 0 {
		o.MemberTimeout = 15 * time.Second
	}
	scheme := Scheme()
	provider := kubeconfig.New(kubeconfig.Options{
		Namespace:             o.ClusterNamespace,
		KubeconfigSecretLabel: fleet.KubeconfigLabel,
		KubeconfigSecretKey:   fleet.KubeconfigKey,
		ClusterOptions: []cluster.Option{func(co *cluster.Options) {
			co.Scheme = scheme
			// Members are watched only for what the hub owns: their other objects (all
			// Secrets, say) never enter the hub's memory.
			co.Cache.DefaultLabelSelector = labels.SelectorFromSet(labels.Set{render.LabelManagedBy: render.ManagedBy})
		}},
		RESTOptions: []func(*rest.Config) error{func(c *rest.Config) error {
			c.Timeout = o.MemberTimeout
			return nil
		}},
	})
	renew := 10 * time.Second
	mgr, err := mcmanager.New(cfg, provider, manager.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:  o.ProbeAddr,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        "inferfleet-hub",
		LeaderElectionNamespace: o.LeaderElectionNS,
		RenewDeadline:           &renew,
		Controller:              config.Controller{SkipNameValidation: &o.SeveralPerProcess},
	})
	if err != nil {
		return nil, fmt.Errorf("new manager: %w", err)
	}
	if err := provider.SetupWithManager(ctx, mgr); err != nil {
		return nil, fmt.Errorf("cluster discovery: %w", err)
	}
	local := mgr.GetLocalManager()
	registry := &fleet.Registry{Reader: local.GetClient(), Namespace: o.ClusterNamespace}
	monitor := fleet.NewMonitor(mgr, registry)
	// Changes land on the registration Secrets, which the reconcilers watch.
	monitor.Hub, monitor.Namespace = local.GetClient(), o.ClusterNamespace
	if o.ProbeInterval > 0 {
		monitor.Interval = o.ProbeInterval
	}
	if err := local.Add(monitor); err != nil {
		return nil, err
	}
	registerMetrics()
	sync := &MemberSync{
		Hub:                local.GetClient(),
		Clusters:           mgr,
		Registry:           registry,
		Monitor:            monitor,
		Recorder:           local.GetEventRecorder("inferfleet-hub"),
		ClusterTimeout:     o.MemberTimeout,
		SkipNameValidation: o.SeveralPerProcess,
	}
	if err := sync.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("member sync: %w", err)
	}
	routes := &RouteSync{
		Hub:                local.GetClient(),
		Clusters:           mgr,
		Registry:           sync.Registry,
		Recorder:           sync.Recorder,
		MemberTimeout:      o.MemberTimeout,
		SkipNameValidation: o.SeveralPerProcess,
	}
	if err := routes.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("route sync: %w", err)
	}
	drills := &DrillReconciler{Hub: local.GetClient(), Recorder: sync.Recorder, SkipNameValidation: o.SeveralPerProcess}
	if err := drills.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("failover drills: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

// controllerOptions caps the retry backoff: a member that is down is retried every few
// seconds, so it converges soon after it returns (the default cap is over 16 minutes).
func controllerOptions(skipNameValidation bool) controller.TypedOptions[mcreconcile.Request] {
	return controller.TypedOptions[mcreconcile.Request]{
		SkipNameValidation: &skipNameValidation,
		RateLimiter:        workqueue.NewTypedItemExponentialFailureRateLimiter[mcreconcile.Request](200*time.Millisecond, 5*time.Second),
	}
}

var registerOnce sync.Once

// registerMetrics adds the hub's metrics to the manager's Prometheus registry, once per
// process.
func registerMetrics() {
	registerOnce.Do(func() {
		metrics.Registry.MustRegister(append(Collectors(), fleet.Collectors()...)...)
	})
}
