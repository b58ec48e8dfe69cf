// Command hub is the inferfleet controller manager. It runs in the fleet's config cluster,
// discovers member clusters and keeps every FleetInferenceService in sync across them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"

	// CA certificates for the hub's own TLS (the GKE Hub API, members' public endpoints) where
	// the image has none: the release image is built without a distribution's bundle.
	_ "golang.org/x/crypto/x509roots/fallback"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/controllers"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/fleet/clusterprofile"
	"github.com/inferfleet/inferfleet/fleet/kind"
	"github.com/inferfleet/inferfleet/internal/version"
)

func main() {
	var o app.HubOptions
	flag.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8443", "Address the Prometheus metrics endpoint binds to; 0 disables it.")
	flag.BoolVar(&o.MetricsSecure, "metrics-secure", true, "Serve metrics over HTTPS, to callers the API server authenticates and authorizes for GET /metrics only; false serves plain HTTP to anyone.")
	flag.StringVar(&o.MetricsCertDir, "metrics-cert-dir", "", "Folder with the metrics server's tls.crt and tls.key (default: a self-signed certificate).")
	flag.BoolVar(&o.EnableHTTP2, "enable-http2", false, "Let the metrics server speak HTTP/2 (off: HTTP/2 rapid-reset and stream-exhaustion attacks).")
	flag.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	flag.BoolVar(&o.LeaderElect, "leader-elect", false, "Elect a leader so that only one hub replica reconciles at a time.")
	flag.StringVar(&o.LeaderElectionNS, "leader-election-namespace", fleet.RegistrationNamespace, "Namespace of the leader-election Lease.")
	flag.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", 15*time.Second, "How long a replica waits after the leader's last renewal before it takes over.")
	flag.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew before it gives up leading (less than the lease duration).")
	flag.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", 2*time.Second, "How often replicas try to acquire or renew the Lease.")
	flag.StringVar(&o.ClusterNamespace, "cluster-namespace", fleet.RegistrationNamespace,
		"Namespace of the kubeconfig Secrets that register member clusters (label "+fleet.KubeconfigLabel+"=true).")
	flag.DurationVar(&o.MemberTimeout, "member-timeout", 15*time.Second, "Bound on one member's sync, so a slow member never holds the others.")
	flag.IntVar(&o.SyncsPerMember, "syncs-per-member", controllers.DefaultSyncsPerMember, "How many services sync to one member at once; each member's syncs run in the order they were queued.")
	flag.DurationVar(&o.ProbeInterval, "probe-interval", 2*time.Second, "How often each member's API server is probed (/readyz) for its health.")
	flag.DurationVar(&o.KVCacheInterval, "kv-cache-interval", controllers.DefaultKVCacheInterval, "How often the model servers' KV-cache use is read from the members for inferfleet_cluster_kv_cache_utilization.")
	hubQPS := flag.Float64("kube-api-qps", 0, "Client-side limit on the hub's requests per second to its own API server; 0 leaves it off (the API server's priority and fairness applies).")
	flag.IntVar(&o.HubBurst, "kube-api-burst", 0, "Burst over --kube-api-qps.")
	memberQPS := flag.Float64("member-api-qps", 0, "Client-side limit on the hub's requests per second to each member's API server; 0 leaves it off.")
	flag.IntVar(&o.MemberBurst, "member-api-burst", 0, "Burst over --member-api-qps.")
	sources := flag.String("cluster-source", app.SourceKubeconfig, "Where member clusters come from, comma-separated: "+
		"kubeconfig (Secrets in --cluster-namespace; always read), gkehub (GKE fleet memberships), kind (local kind clusters), "+
		"clusterprofile (SIG Multicluster ClusterProfiles in --clusterprofile-namespace).")
	flag.DurationVar(&o.DiscoveryInterval, "discovery-interval", 5*time.Second, "How often discovery sources are asked for their clusters.")
	flag.StringVar(&o.GKE.Project, "gke-project", "", "gkehub: the fleet host project (id or number) whose memberships are members.")
	flag.StringVar(&o.GKE.ProjectNumber, "gke-project-number", "", "gkehub: the project number, for Connect Gateway URLs (default: --gke-project).")
	flag.StringVar(&o.GKE.Location, "gke-location", "global", "gkehub: membership location, a region, or - for all.")
	gkeSelector := flag.String("gke-selector", "", "gkehub: label selector on membership labels (and "+fleet.RegionLabel+"), e.g. env=prod.")
	flag.BoolVar(&o.GKE.UseEndpoint, "gke-endpoint", false, "gkehub: reach members at their GKE control-plane endpoint (from the GKE API) instead of the Connect Gateway.")
	flag.DurationVar(&o.GKE.PollInterval, "gke-poll-interval", 30*time.Second, "gkehub: how often memberships are listed.")
	flag.StringVar(&o.Kind.Prefix, "kind-prefix", kind.DefaultPrefix, "kind: the name prefix of member kind clusters (- for every kind cluster).")
	flag.BoolVar(&o.Kind.Internal, "kind-internal", false, "kind: reach clusters at their addresses on the kind network (a hub in a container on that network).")
	flag.StringVar(&o.ClusterProfile.Namespace, "clusterprofile-namespace", "", "clusterprofile: the namespace of the ClusterProfiles and their credential Secrets (required with that source).")
	flag.StringVar(&o.ClusterProfile.ConsumerName, "clusterprofile-consumer", clusterprofile.DefaultConsumerName,
		"clusterprofile: the "+clusterprofile.LabelConsumer+" label value of the hub's credential Secrets.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	printVersion := flag.Bool("version", false, "Print the hub's version and build, and exit.")
	flag.Parse()
	if *printVersion {
		fmt.Println("inferfleet hub", version.Get())
		return
	}
	o.HubQPS, o.MemberQPS = float32(*hubQPS), float32(*memberQPS)
	for name, v := range map[string]float64{"--kube-api-qps": *hubQPS, "--kube-api-burst": float64(o.HubBurst),
		"--member-api-qps": *memberQPS, "--member-api-burst": float64(o.MemberBurst)} {
		if v < 0 {
			fail(name, fmt.Errorf("must not be negative (0 leaves the limit off)"))
		}
	}
	if o.SyncsPerMember < 1 {
		fail("--syncs-per-member", fmt.Errorf("must be at least 1, got %d", o.SyncsPerMember))
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	var err error
	if o.Sources, err = app.ParseSources(*sources); err != nil {
		fail("--cluster-source", err)
	}
	if slices.Contains(o.Sources, app.SourceGKEHub) && o.GKE.Project == "" {
		fail("--gke-project", errors.New("required with --cluster-source="+app.SourceGKEHub+": the fleet host project whose memberships are members"))
	}
	if slices.Contains(o.Sources, app.SourceClusterProfile) && o.ClusterProfile.Namespace == "" {
		fail("--clusterprofile-namespace", errors.New("required with --cluster-source="+app.SourceClusterProfile+": the namespace whose ClusterProfiles are members"))
	}
	if *gkeSelector != "" {
		if o.GKE.LabelSelector, err = labels.Parse(*gkeSelector); err != nil {
			fail("--gke-selector", err)
		}
	}

	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		ctrl.Log.Error(err, "hub stopped")
		os.Exit(1)
	}
}

func fail(flagName string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", flagName, err)
	os.Exit(2)
}

func run(ctx context.Context, o app.HubOptions) error {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("hub kubeconfig: %w", err)
	}
	mgr, err := app.NewHub(ctx, cfg, o)
	if err != nil {
		return err
	}
	ctrl.Log.WithName("hub").Info("starting", "clusterNamespace", o.ClusterNamespace, "clusterSources", o.Sources, "leaderElect", o.LeaderElect)
	return mgr.Start(ctx)
}
