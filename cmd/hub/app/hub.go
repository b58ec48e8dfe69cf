// Package app wires the hub: cluster discovery, the health monitor and every reconciler
// in one multicluster manager. cmd/hub runs it; tests and the local fleet run it in
// process.
package app

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	mcmanager "sigs.k8s.io/multicluster-runtime/pkg/manager"
	"sigs.k8s.io/multicluster-runtime/providers/kubeconfig"

	"github.com/inferfleet/inferfleet/api/scheme"
	"github.com/inferfleet/inferfleet/controllers"
	"github.com/inferfleet/inferfleet/controllers/render"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/fleet/clusterprofile"
	"github.com/inferfleet/inferfleet/fleet/gkehub"
	"github.com/inferfleet/inferfleet/fleet/kind"
)

// HubOptions configures the hub manager.
type HubOptions struct {
	MetricsAddr      string
	ProbeAddr        string
	LeaderElect      bool
	LeaderElectionNS string
	// LeaseDuration, RenewDeadline and RetryPeriod are leader election's (15s, 10s and
	// 2s when zero): a replica takes over at most LeaseDuration after the leader stops
	// renewing.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// ClusterNamespace holds the kubeconfig Secrets that register members.
	ClusterNamespace string
	// MemberTimeout bounds the work on one member (controllers.DefaultMemberTimeout when zero).
	MemberTimeout time.Duration
	// SyncsPerMember is how many services sync to one member at once
	// (controllers.DefaultSyncsPerMember when zero).
	SyncsPerMember int
	// ProbeInterval is how often each member's API server is probed (default 2s).
	ProbeInterval time.Duration
	// SeveralPerProcess lets tests run more than one hub in a process (controller names
	// are otherwise unique per process, for their metrics).
	SeveralPerProcess bool

	// Sources are the cluster sources (SourceKubeconfig, SourceGKEHub, SourceKind).
	// Kubeconfig Secrets are always read: the kind source registers its clusters that way,
	// and a cluster someone registered by hand is a member whatever else is on.
	Sources []string
	// GKE configures the GKE Hub source (Project is required when it is on).
	GKE gkehub.Options
	// Kind configures the kind source.
	Kind kind.Options
	// ClusterProfile configures the clusterprofile source (its Reader is the hub's).
	ClusterProfile clusterprofile.Options
	// DiscoveryInterval is how often discovery sources are asked for their clusters
	// (default 5s; GKE Hub itself is polled on GKE.PollInterval).
	DiscoveryInterval time.Duration
	// KVCacheInterval is how often the model servers' KV-cache use is read from the
	// members (default DefaultKVCacheInterval).
	KVCacheInterval time.Duration
	// HubQPS and HubBurst are the client-side rate limit on the hub's requests to its own
	// API server; 0 keeps the rest.Config's (controller-runtime's GetConfig turns it off
	// and leaves fairness to the API server's priority and fairness), a negative QPS
	// turns it off.
	HubQPS   float32
	HubBurst int
	// MemberQPS and MemberBurst are the same for each member's API server. 0 turns it off,
	// as for the hub; without that, client-go's default for a kubeconfig (5 requests a
	// second) would queue the writes to a member that runs many services.
	MemberQPS   float32
	MemberBurst int
	// MetricsSecure serves /metrics over HTTPS to authenticated, authorized callers only
	// (the hub binary's default; in-process tests leave it off).
	MetricsSecure bool
	// MetricsCertDir holds the metrics server's tls.crt and tls.key (default: a
	// self-signed certificate made at start).
	MetricsCertDir string
	// EnableHTTP2 lets the metrics server speak HTTP/2 (off by default).
	EnableHTTP2 bool
}

// metricsOptions serve /metrics as kubebuilder's scaffold does: with MetricsSecure, over
// HTTPS (a self-signed certificate unless MetricsCertDir holds tls.crt and tls.key) and
// only to callers the API server authenticates (TokenReview) and authorizes (a
// SubjectAccessReview for GET on the /metrics URL); HTTP/2 stays off unless EnableHTTP2
// (CVE-2023-44487, CVE-2023-39325).
func metricsOptions(o HubOptions) metricsserver.Options {
	m := metricsserver.Options{BindAddress: o.MetricsAddr, SecureServing: o.MetricsSecure}
	if !o.EnableHTTP2 {
		m.TLSOpts = append(m.TLSOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	if o.MetricsSecure {
		m.FilterProvider = filters.WithAuthenticationAndAuthorization
		m.CertDir = o.MetricsCertDir
	}
	return m
}

// rateLimits applies a client-side rate limit to a rest.Config: qps 0 keeps the config's,
// burst 0 too.
func rateLimits(c *rest.Config, qps float32, burst int) {
	if qps != 0 {
		c.QPS = qps
	}
	if burst > 0 {
		c.Burst = burst
	}
}

// Cluster sources, as --cluster-source names them.
const (
	SourceKubeconfig = "kubeconfig"
	SourceGKEHub     = gkehub.SourceName
	SourceKind       = kind.SourceName
	// SourceClusterProfile: SIG Multicluster ClusterProfiles in a namespace of the hub.
	SourceClusterProfile = clusterprofile.SourceName
)

// allSources lists the sources for messages.
var allSources = []string{SourceKubeconfig, SourceGKEHub, SourceKind, SourceClusterProfile}

// ParseSources reads a --cluster-source value: a comma-separated list of sources.
func ParseSources(v string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		switch s {
		case "":
			continue
		case SourceKubeconfig, SourceGKEHub, SourceKind, SourceClusterProfile:
		default:
			return nil, fmt.Errorf("unknown cluster source %q: use %s (comma-separated to combine)", s, strings.Join(allSources, ", "))
		}
		if slices.Contains(out, s) {
			return nil, fmt.Errorf("cluster source %q given twice", s)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no cluster source given: use %s", strings.Join(allSources, ", "))
	}
	return out, nil
}

// Scheme is every type the hub reads or writes typed.
func Scheme() *runtime.Scheme { return scheme.New() }

// NewHub builds the hub's multicluster manager: member discovery (kubeconfig Secrets and
// the discovery sources in o.Sources) and every reconciler. Start it with Start(ctx).
func NewHub(ctx context.Context, cfg *rest.Config, o HubOptions) (mcmanager.Manager, error) {
	if o.ClusterNamespace == "" {
		o.ClusterNamespace = fleet.RegistrationNamespace
	}
	if o.MemberTimeout == 0 {
		o.MemberTimeout = controllers.DefaultMemberTimeout
	}
	if o.HubBurst < 0 || o.MemberBurst < 0 {
		return nil, fmt.Errorf("API bursts must not be negative: hub %d, member %d", o.HubBurst, o.MemberBurst)
	}
	cfg = rest.CopyConfig(cfg)
	rateLimits(cfg, o.HubQPS, o.HubBurst)
	scheme := Scheme()
	// Every member's rest.Config, whatever source it came from: a bound on one member's
	// work, and the client-side rate limit, off unless set (a kubeconfig never sets one).
	memberREST := func(c *rest.Config) error {
		if err := fleet.SelfContained(c); err != nil {
			return err
		}
		c.Timeout = o.MemberTimeout
		if c.QPS == 0 {
			c.QPS = -1
		}
		rateLimits(c, o.MemberQPS, o.MemberBurst)
		return nil
	}
	memberOptions := []cluster.Option{func(co *cluster.Options) {
		co.Scheme = scheme
		// Members are watched only for what the hub owns: their other objects (all
		// Secrets, say) never enter the hub's memory.
		co.Cache.DefaultLabelSelector = labels.SelectorFromSet(labels.Set{render.LabelManagedBy: render.ManagedBy})
		// Nothing the hub does with a member reads managedFields (ownership is decided on
		// the API server's copy): the cached objects leave them out.
		co.Cache.DefaultTransform = cache.TransformStripManagedFields()
	}}
	provider := kubeconfig.New(kubeconfig.Options{
		Namespace:             o.ClusterNamespace,
		KubeconfigSecretLabel: fleet.KubeconfigLabel,
		KubeconfigSecretKey:   fleet.KubeconfigKey,
		ClusterOptions:        memberOptions,
		RESTOptions:           []func(*rest.Config) error{memberREST},
	})
	providers, sources, err := discoverySources(o, provider, memberOptions, memberREST)
	if err != nil {
		return nil, err
	}
	lease, renew, retry := cmp.Or(o.LeaseDuration, 15*time.Second), cmp.Or(o.RenewDeadline, 10*time.Second), cmp.Or(o.RetryPeriod, 2*time.Second)
	mgr, err := mcmanager.New(cfg, providers, manager.Options{
		Scheme:                  scheme,
		Metrics:                 metricsOptions(o),
		HealthProbeBindAddress:  o.ProbeAddr,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        "inferfleet-hub",
		LeaderElectionNamespace: o.LeaderElectionNS,
		LeaseDuration:           &lease,
		RenewDeadline:           &renew,
		RetryPeriod:             &retry,
		// A leader that stops (SIGTERM) gives the Lease up at once; one that is killed
		// holds it for LeaseDuration.
		LeaderElectionReleaseOnCancel: true,
		Controller:                    config.Controller{SkipNameValidation: &o.SeveralPerProcess},
	})
	if err != nil {
		return nil, fmt.Errorf("new manager: %w", err)
	}
	// The provider drops a cluster whose engagement fails and adds it again, in a loop
	// while a member hangs; engaged in the background, it stays registered.
	if err := provider.SetupWithManager(ctx, fleet.BackgroundEngage{Manager: mgr, Log: log.Log.WithName("kubeconfig-provider")}); err != nil {
		return nil, fmt.Errorf("cluster discovery: %w", err)
	}
	local := mgr.GetLocalManager()
	if slices.Contains(o.Sources, SourceClusterProfile) {
		cp := o.ClusterProfile
		cp.Reader = local.GetAPIReader()
		sources = append(sources, clusterprofile.New(cp))
	}
	if len(sources) > 0 {
		discovery := &fleet.Discovery{Client: local.GetClient(), Namespace: o.ClusterNamespace, Sources: sources, Interval: o.DiscoveryInterval}
		if err := local.Add(discovery); err != nil {
			return nil, err
		}
	}
	registry := &fleet.Registry{Reader: local.GetClient(), Namespace: o.ClusterNamespace}
	monitor := fleet.NewMonitor(mgr, registry)
	monitor.Kubeconfigs = registry
	// Changes land on the registration Secrets, which the reconcilers watch.
	monitor.Hub, monitor.Namespace = local.GetClient(), o.ClusterNamespace
	if o.ProbeInterval > 0 {
		monitor.Interval = o.ProbeInterval
	}
	if err := local.Add(monitor); err != nil {
		return nil, err
	}
	controllers.RegisterMetrics()
	recorder := local.GetEventRecorder("inferfleet-hub")
	clock := &controllers.GenerationClock{}
	// Member sync reports each member's outcome; placement writes them with its decision.
	reports := &controllers.Reports{}
	// The KV-cache reader reads the model servers' load; placement autoscales on it.
	loads := controllers.NewLoads()
	placement := &controllers.Placement{
		Hub:                local.GetClient(),
		APIReader:          local.GetAPIReader(),
		Registry:           registry,
		Monitor:            monitor,
		Recorder:           recorder,
		Clock:              clock,
		Reports:            reports,
		Loads:              loads,
		SkipNameValidation: o.SeveralPerProcess,
	}
	if err := placement.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("placement: %w", err)
	}
	sync := &controllers.MemberSync{
		Hub:                local.GetClient(),
		Clusters:           mgr,
		Registry:           registry,
		Monitor:            monitor,
		Recorder:           recorder,
		Clock:              clock,
		Reports:            reports,
		ClusterTimeout:     o.MemberTimeout,
		PerMember:          o.SyncsPerMember,
		SkipNameValidation: o.SeveralPerProcess,
	}
	if err := sync.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("member sync: %w", err)
	}
	// The KV-cache reader reads the model servers member sync runs, where it runs them.
	if err := local.Add(&controllers.KVCacheReader{Hub: local.GetClient(), Clusters: mgr, Interval: o.KVCacheInterval, Loads: loads}); err != nil {
		return nil, err
	}
	routes := &controllers.RouteSync{
		Hub:                local.GetClient(),
		APIReader:          local.GetAPIReader(),
		Clusters:           mgr,
		Registry:           sync.Registry,
		Recorder:           sync.Recorder,
		MemberTimeout:      o.MemberTimeout,
		SkipNameValidation: o.SeveralPerProcess,
	}
	if err := routes.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("route sync: %w", err)
	}
	drills := &controllers.DrillReconciler{Hub: local.GetClient(), Recorder: sync.Recorder, SkipNameValidation: o.SeveralPerProcess}
	if err := drills.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("failover drills: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	ready := newReadiness(local.GetCache(), registry)
	if err := local.Add(ready); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("caches-and-registry", ready.Check); err != nil {
		return nil, err
	}
	return mgr, nil
}

// discoverySources builds the providers the manager serves clusters from (the kubeconfig
// provider first) and the discovery sources that register clusters in the hub.
func discoverySources(o HubOptions, kubeconfigProvider *kubeconfig.Provider, memberOptions []cluster.Option, memberREST func(*rest.Config) error) (fleet.Providers, []fleet.Source, error) {
	names := o.Sources
	if len(names) == 0 {
		names = []string{SourceKubeconfig}
	}
	providers := fleet.Providers{kubeconfigProvider}
	var sources []fleet.Source
	for _, name := range names {
		switch name {
		case SourceKubeconfig:
		case SourceGKEHub:
			g := o.GKE
			g.ClusterOptions = append(slices.Clone(memberOptions), g.ClusterOptions...)
			g.RESTOptions = append(g.RESTOptions, memberREST)
			p, err := gkehub.New(g)
			if err != nil {
				return nil, nil, fmt.Errorf("cluster source %s: %w", name, err)
			}
			providers = append(providers, p)
			sources = append(sources, p)
		case SourceKind:
			sources = append(sources, kind.New(o.Kind))
		case SourceClusterProfile: // reads the hub: added once the manager exists
		default:
			return nil, nil, fmt.Errorf("unknown cluster source %q", name)
		}
	}
	return providers, sources, nil
}
