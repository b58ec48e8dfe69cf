// Package gkehub discovers member clusters from a Google Cloud fleet (GKE Hub memberships)
// and engages them with a multicluster-runtime manager, reached through the Connect Gateway.
// It is the cloud counterpart of the kubeconfig-Secret registrations that fleet.Registry reads.
package gkehub

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	container "cloud.google.com/go/container/apiv1"
	"cloud.google.com/go/container/apiv1/containerpb"
	gkehub "cloud.google.com/go/gkehub/apiv1beta1"
	"cloud.google.com/go/gkehub/apiv1beta1/gkehubpb"
	"github.com/go-logr/logr"
	"github.com/googleapis/gax-go/v2"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"

	"github.com/inferfleet/inferfleet/fleet"
)

var (
	_ multicluster.Provider         = &Provider{}
	_ multicluster.ProviderRunnable = &Provider{}
	_ fleet.Source                  = &Provider{}
)

const (
	defaultLocation     = globalLocation
	defaultPollInterval = 30 * time.Second
	defaultBackoff      = 5 * time.Second
	// cacheSyncTimeout bounds the wait for a new cluster's cache, so one unreachable
	// cluster delays the others in a poll by at most this much.
	cacheSyncTimeout   = time.Minute
	cloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform"
)

// Options configures the GKE Hub provider. Zero values take the defaults documented on
// each field.
type Options struct {
	// Project is the fleet host project whose memberships are listed. Required.
	Project string
	// ProjectNumber goes into Connect Gateway URLs, which need the project number.
	// Default: Project (set it whenever Project is an id).
	ProjectNumber string
	// Location of the memberships to list: "global" (default), a region, or "-" for all.
	Location string
	// LabelSelector, when set, engages only memberships whose labels (plus the region
	// label) match.
	LabelSelector labels.Selector
	// PollInterval is how often memberships are listed. Default 30s.
	PollInterval time.Duration
	// UseEndpoint reaches each cluster at its own control-plane endpoint instead of through
	// the Connect Gateway: the hub must reach that address (same VPC, authorized networks)
	// and may get clusters from the GKE API (container.clusters.get), which gives the
	// endpoint and the cluster CA.
	UseEndpoint bool
	// RESTConfigFor builds the rest.Config of a member. It is called on every poll; a
	// changed Host (or changed labels) re-creates the cluster. Default: the member's
	// ConnectGatewayHost, authenticated with TokenSource.
	RESTConfigFor func(m Member) (*rest.Config, error)
	// RESTOptions adjust every member's rest.Config after RESTConfigFor (timeouts, say).
	RESTOptions []func(*rest.Config) error
	// TokenSource authenticates the default Connect Gateway configs. Nil means Google
	// application-default credentials, looked up when the provider starts.
	TokenSource oauth2.TokenSource
	// ClusterOptions are passed to cluster.New for every member.
	ClusterOptions []cluster.Option
	// ClientOptions are passed to the GKE Hub membership client (endpoint, credentials).
	ClientOptions []option.ClientOption
	// ClusterManagerOptions are passed to the GKE (Container API) client UseEndpoint uses.
	ClusterManagerOptions []option.ClientOption
	// Backoff is the first retry delay after a failed list; it doubles on every further
	// failure, up to PollInterval. Default 5s.
	Backoff time.Duration
}

// Provider lists GKE Hub memberships on an interval and engages every READY one (that the
// label selector picks) as a cluster; memberships that disappear, stop being READY or stop
// matching are disengaged by cancelling their context. API errors keep the engaged
// clusters and retry with exponential backoff.
type Provider struct {
	opts       Options
	log        logr.Logger
	newCluster func(*rest.Config, ...cluster.Option) (cluster.Cluster, error)
	// skipped remembers why a membership was skipped, so each reason is logged once.
	// Only the Start goroutine touches it.
	skipped map[string]string
	// running tracks the clusters' Start goroutines, so Start returns after they stop.
	running sync.WaitGroup

	lock     sync.RWMutex // protects started, polled, clusters and indexers
	started  bool
	polled   bool     // a list of memberships has gone through once
	found    []Member // the members of the last list: READY, selected, or kept
	clusters map[multicluster.ClusterName]activeCluster
	indexers []index
}

type activeCluster struct {
	member  Member
	cluster cluster.Cluster
	cancel  context.CancelFunc
	hash    string // of the rest.Config host and the member's labels
}

type index struct {
	object       client.Object
	field        string
	extractValue client.IndexerFunc
}

// New checks the options, fills in the defaults and returns a provider to pass to
// mcmanager.New; the manager starts it.
func New(opts Options) (*Provider, error) {
	if opts.Project == "" {
		return nil, errors.New("gkehub: Project is required")
	}
	if opts.ProjectNumber == "" {
		opts.ProjectNumber = opts.Project
	}
	if opts.Location == "" {
		opts.Location = defaultLocation
	}
	if opts.LabelSelector == nil {
		opts.LabelSelector = labels.Everything()
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = defaultPollInterval
	}
	if opts.Backoff <= 0 {
		opts.Backoff = defaultBackoff
	}
	opts.Backoff = min(opts.Backoff, opts.PollInterval)
	return &Provider{
		opts:       opts,
		log:        log.Log.WithName("gkehub-provider").WithValues("project", opts.Project, "location", opts.Location),
		newCluster: cluster.New,
		skipped:    map[string]string{},
		clusters:   map[multicluster.ClusterName]activeCluster{},
	}, nil
}

// Get returns the engaged cluster of a membership, or multicluster.ErrClusterNotFound.
func (p *Provider) Get(_ context.Context, name multicluster.ClusterName) (cluster.Cluster, error) {
	ac, ok := p.getCluster(name)
	if !ok {
		return nil, multicluster.ErrClusterNotFound
	}
	return ac.cluster, nil
}

// IndexField adds an index to every engaged cluster and to those engaged later.
func (p *Provider) IndexField(ctx context.Context, obj client.Object, field string, extractValue client.IndexerFunc) error {
	p.lock.Lock()
	defer p.lock.Unlock()
	p.indexers = append(p.indexers, index{object: obj, field: field, extractValue: extractValue})
	for name, ac := range p.clusters {
		if err := ac.cluster.GetFieldIndexer().IndexField(ctx, obj, field, extractValue); err != nil {
			return fmt.Errorf("index field %q on cluster %s: %w", field, name, err)
		}
	}
	return nil
}

// List returns the engaged members sorted by name: what placement needs (name, region,
// labels), as fleet.Registry gives it for kubeconfig Secrets.
func (p *Provider) List() []Member {
	p.lock.RLock()
	out := make([]Member, 0, len(p.clusters))
	for _, ac := range p.clusters {
		m := ac.member
		m.Labels = maps.Clone(ac.member.Labels)
		out = append(out, m)
	}
	p.lock.RUnlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// SourceName labels the registrations of GKE Hub clusters.
const SourceName = "gkehub"

// Name is the discovery source's name, "gkehub".
func (p *Provider) Name() string { return SourceName }

// Discover returns the members of the last membership list as registrations without a
// kubeconfig (the provider itself reaches them), whether or not their cluster could be
// engaged: a member that cannot be reached is registered, so the health monitor reports
// it unreachable. Before the first successful list it returns fleet.ErrNotSynced.
func (p *Provider) Discover(context.Context) ([]fleet.Registration, error) {
	p.lock.RLock()
	defer p.lock.RUnlock()
	if !p.polled {
		return nil, fleet.ErrNotSynced
	}
	out := make([]fleet.Registration, len(p.found))
	for i, m := range p.found {
		out[i] = fleet.Registration{Cluster: m.Cluster}
		out[i].Labels = maps.Clone(m.Labels)
	}
	return out, nil
}

// Lister adapts List to fleet.ClusterLister, for the code that takes fleet.Registry.
func (p *Provider) Lister() fleet.ClusterLister { return clusterLister{p} }

type clusterLister struct{ p *Provider }

func (l clusterLister) List(context.Context) ([]fleet.Cluster, error) {
	members := l.p.List()
	out := make([]fleet.Cluster, len(members))
	for i := range members {
		out[i] = members[i].Cluster
	}
	return out, nil
}

// Start polls GKE Hub until ctx ends and engages the clusters it finds with aware. It
// blocks, and returns after every cluster it started has stopped.
func (p *Provider) Start(ctx context.Context, aware multicluster.Aware) error {
	if err := p.markStarted(); err != nil {
		return err
	}
	restConfigFor := p.opts.RESTConfigFor
	if restConfigFor == nil {
		ts := p.opts.TokenSource
		if ts == nil {
			var err error
			if ts, err = google.DefaultTokenSource(ctx, cloudPlatformScope); err != nil {
				return fmt.Errorf("find application default credentials for the Connect Gateway: %w", err)
			}
		}
		ts = oauth2.ReuseTokenSource(nil, ts)
		if p.opts.UseEndpoint {
			clusters, err := container.NewClusterManagerClient(ctx, p.opts.ClusterManagerOptions...)
			if err != nil {
				return fmt.Errorf("create GKE cluster manager client: %w", err)
			}
			defer clusters.Close()
			restConfigFor = endpointConfig(ctx, clusters, ts)
		} else {
			restConfigFor = connectGatewayConfig(ts)
		}
	}
	hub, err := gkehub.NewGkeHubMembershipClient(ctx, p.opts.ClientOptions...)
	if err != nil {
		return fmt.Errorf("create GKE Hub membership client: %w", err)
	}
	defer func() {
		if err := hub.Close(); err != nil {
			p.log.Error(err, "close GKE Hub membership client")
		}
	}()
	defer p.removeAll()

	p.log.Info("starting GKE Hub provider", "pollInterval", p.opts.PollInterval)
	backoff := p.opts.Backoff
	for {
		wait := p.opts.PollInterval
		if err := p.poll(ctx, hub, aware, restConfigFor); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			p.log.Error(err, "list memberships failed; keeping the engaged clusters", "retryIn", backoff)
			wait = backoff
			backoff = nextBackoff(backoff, p.opts.PollInterval)
		} else {
			backoff = p.opts.Backoff
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// nextBackoff doubles the retry delay, capped at the poll interval: retrying less often
// than a healthy poll would only delay recovery.
func nextBackoff(cur, limit time.Duration) time.Duration {
	return min(2*cur, limit)
}

// endpointConfig reaches members at their GKE control-plane endpoint, which the Container
// API gives with the cluster's CA, with OAuth tokens.
func endpointConfig(ctx context.Context, clusters *container.ClusterManagerClient, ts oauth2.TokenSource) func(Member) (*rest.Config, error) {
	return func(m Member) (*rest.Config, error) {
		name, err := clusterName(m.ResourceLink)
		if err != nil {
			return nil, err
		}
		c, err := clusters.GetCluster(ctx, &containerpb.GetClusterRequest{Name: name})
		if err != nil {
			return nil, fmt.Errorf("get GKE cluster %s: %w", name, err)
		}
		if c.GetEndpoint() == "" {
			return nil, fmt.Errorf("GKE cluster %s has no endpoint yet (status %s)", name, c.GetStatus())
		}
		ca, err := base64.StdEncoding.DecodeString(c.GetMasterAuth().GetClusterCaCertificate())
		if err != nil {
			return nil, fmt.Errorf("GKE cluster %s CA certificate: %w", name, err)
		}
		return &rest.Config{
			Host:            "https://" + c.GetEndpoint(),
			TLSClientConfig: rest.TLSClientConfig{CAData: ca},
			WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
				return &oauth2.Transport{Source: ts, Base: rt}
			},
		}, nil
	}
}

// clusterName turns a GKE resource link into the Container API's cluster name,
// projects/P/locations/L/clusters/C (older links say zones/ for locations/).
func clusterName(link string) (string, error) {
	if _, err := parseClusterLocation(link); err != nil {
		return "", err
	}
	p := strings.Split(strings.TrimPrefix(link, gkeResourcePrefix), "/")
	p[2] = "locations"
	return strings.Join(p, "/"), nil
}

// connectGatewayConfig reaches members through the Connect Gateway with OAuth tokens.
func connectGatewayConfig(ts oauth2.TokenSource) func(Member) (*rest.Config, error) {
	return func(m Member) (*rest.Config, error) {
		return &rest.Config{
			Host: m.ConnectGatewayHost,
			WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
				return &oauth2.Transport{Source: ts, Base: rt}
			},
		}, nil
	}
}

// poll lists the memberships once and brings the engaged clusters in line. Only a failed
// list is an error; a member that cannot be engaged is logged and tried on the next poll.
func (p *Provider) poll(ctx context.Context, hub *gkehub.GkeHubMembershipClient, aware multicluster.Aware, restConfigFor func(Member) (*rest.Config, error)) error {
	members, unreachable, err := p.listMembers(ctx, hub)
	if err != nil {
		return err
	}
	want := make(map[multicluster.ClusterName]Member, len(members))
	for _, m := range members {
		if m.Ready && p.opts.LabelSelector.Matches(labels.Set(m.Labels)) {
			want[multicluster.ClusterName(m.Name)] = m
		}
	}

	found := slices.Collect(maps.Values(want))
	for name, ac := range p.snapshot() {
		if _, ok := want[name]; ok {
			continue
		}
		// A location GKE Hub could not reach says nothing about its memberships.
		if unreachable[ac.member.Location] {
			found = append(found, ac.member)
			continue
		}
		p.log.Info("disengaging cluster: membership gone, not READY or not selected", "cluster", name)
		p.removeCluster(name)
	}

	slices.SortFunc(found, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	p.lock.Lock()
	p.found, p.polled = found, true
	p.lock.Unlock()

	for _, name := range slices.Sorted(maps.Keys(want)) {
		if ctx.Err() != nil {
			return nil
		}
		m := want[name]
		log := p.log.WithValues("cluster", name)
		cfg, err := p.restConfig(restConfigFor, m)
		if err != nil {
			log.Error(err, "build rest config; will retry on the next poll")
			continue
		}
		hash := configHash(cfg, m.Labels)
		if ac, ok := p.getCluster(name); ok {
			if ac.hash == hash {
				p.updateMember(name, m)
				continue
			}
			log.Info("re-creating cluster: endpoint or labels changed")
			p.removeCluster(name)
		}
		if err := p.engage(ctx, aware, m, cfg, hash); err != nil {
			log.Error(err, "engage cluster; will retry on the next poll")
		}
	}
	return nil
}

// restConfig builds a member's rest.Config and applies the RESTOptions.
func (p *Provider) restConfig(restConfigFor func(Member) (*rest.Config, error), m Member) (*rest.Config, error) {
	cfg, err := restConfigFor(m)
	if err != nil {
		return nil, err
	}
	for _, opt := range p.opts.RESTOptions {
		if err := opt(cfg); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// listMembers lists every membership under the parent and returns those that are GKE
// clusters, with the locations GKE Hub reported unreachable.
func (p *Provider) listMembers(ctx context.Context, hub *gkehub.GkeHubMembershipClient) ([]Member, map[string]bool, error) {
	parent := fmt.Sprintf("projects/%s/locations/%s", p.opts.Project, p.opts.Location)
	// The client's own retries would hide errors for up to a minute; the poll loop
	// retries with its own backoff and keeps the clusters meanwhile.
	noRetry := gax.WithRetry(func() gax.Retryer { return nil })
	it := hub.ListMemberships(ctx, &gkehubpb.ListMembershipsRequest{Parent: parent}, noRetry)
	var members []Member
	unreachable := map[string]bool{}
	seen := map[string]string{}
	for {
		mb, err := it.Next()
		if resp, ok := it.Response.(*gkehubpb.ListMembershipsResponse); ok {
			for _, u := range resp.GetUnreachable() {
				// Either "projects/P/locations/L" or "L".
				unreachable[u[strings.LastIndexByte(u, '/')+1:]] = true
			}
		}
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("list memberships in %s: %w", parent, err)
		}
		m, err := MemberFromMembership(mb, p.opts.ProjectNumber)
		if err == nil {
			if other, dup := seen[m.Name]; dup {
				err = fmt.Errorf("membership %s has the same name as %s in another location", mb.GetName(), other)
			}
		}
		if err != nil {
			p.logSkip(mb.GetName(), err.Error())
			continue
		}
		delete(p.skipped, mb.GetName())
		seen[m.Name] = mb.GetName()
		members = append(members, m)
	}
	return members, unreachable, nil
}

func (p *Provider) logSkip(membership, reason string) {
	if p.skipped[membership] == reason {
		return
	}
	p.skipped[membership] = reason
	p.log.Info("skipping membership", "membership", membership, "reason", reason)
}

// configHash identifies what a cluster was built from: a new host, CA or labels build a
// new cluster, so the engaged controllers see them from the start.
func configHash(cfg *rest.Config, l map[string]string) string {
	h := sha256.New()
	h.Write([]byte(cfg.Host))
	h.Write(cfg.CAData)
	for _, k := range slices.Sorted(maps.Keys(l)) {
		fmt.Fprintf(h, "\n%s=%s", k, l[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// engage creates and starts a member's cluster, waits for its cache and hands it to aware
// with a context that is cancelled when the member goes away.
func (p *Provider) engage(ctx context.Context, aware multicluster.Aware, m Member, cfg *rest.Config, hash string) error {
	name := multicluster.ClusterName(m.Name)
	cl, err := p.newCluster(cfg, p.opts.ClusterOptions...)
	if err != nil {
		return fmt.Errorf("create cluster %s: %w", name, err)
	}
	if err := p.applyIndexers(ctx, cl); err != nil {
		return fmt.Errorf("cluster %s: %w", name, err)
	}
	clusterCtx, cancel := context.WithCancel(ctx)
	p.running.Add(1)
	go func() {
		defer p.running.Done()
		if err := cl.Start(clusterCtx); err != nil {
			p.log.Error(err, "cluster stopped", "cluster", name)
		}
	}()
	syncCtx, syncDone := context.WithTimeout(clusterCtx, cacheSyncTimeout)
	defer syncDone()
	if !cl.GetCache().WaitForCacheSync(syncCtx) {
		cancel()
		return fmt.Errorf("cache of cluster %s did not sync within %s", name, cacheSyncTimeout)
	}
	p.setCluster(name, activeCluster{member: m, cluster: cl, cancel: cancel, hash: hash})
	// Engaged in the background: a member that does not answer now stays registered, and
	// the health monitor judges it, instead of being dropped and re-created every poll.
	fleet.EngageInBackground(clusterCtx, aware, name, cl, p.log)
	p.log.Info("added cluster", "cluster", name, "region", m.Region, "host", cfg.Host)
	return nil
}

func (p *Provider) markStarted() error {
	p.lock.Lock()
	defer p.lock.Unlock()
	if p.started {
		return errors.New("gkehub: provider already started")
	}
	p.started = true
	return nil
}

func (p *Provider) applyIndexers(ctx context.Context, cl cluster.Cluster) error {
	p.lock.RLock()
	defer p.lock.RUnlock()
	for _, idx := range p.indexers {
		if err := cl.GetFieldIndexer().IndexField(ctx, idx.object, idx.field, idx.extractValue); err != nil {
			return fmt.Errorf("index field %q: %w", idx.field, err)
		}
	}
	return nil
}

func (p *Provider) getCluster(name multicluster.ClusterName) (activeCluster, bool) {
	p.lock.RLock()
	defer p.lock.RUnlock()
	ac, ok := p.clusters[name]
	return ac, ok
}

func (p *Provider) setCluster(name multicluster.ClusterName, ac activeCluster) {
	p.lock.Lock()
	defer p.lock.Unlock()
	p.clusters[name] = ac
}

// updateMember refreshes what List reports for a member whose cluster stays.
func (p *Provider) updateMember(name multicluster.ClusterName, m Member) {
	p.lock.Lock()
	defer p.lock.Unlock()
	if ac, ok := p.clusters[name]; ok {
		ac.member = m
		p.clusters[name] = ac
	}
}

func (p *Provider) snapshot() map[multicluster.ClusterName]activeCluster {
	p.lock.RLock()
	defer p.lock.RUnlock()
	return maps.Clone(p.clusters)
}

// removeCluster forgets a cluster and cancels its context, which disengages it and stops
// its cache. The cancel happens outside the lock: Get must not wait on a stopping cluster.
func (p *Provider) removeCluster(name multicluster.ClusterName) {
	p.lock.Lock()
	ac, ok := p.clusters[name]
	delete(p.clusters, name)
	p.lock.Unlock()
	if ok {
		ac.cancel()
	}
}

// removeAll disengages every cluster and waits for them to stop, when the provider stops.
func (p *Provider) removeAll() {
	p.lock.Lock()
	all := p.clusters
	p.clusters = map[multicluster.ClusterName]activeCluster{}
	p.lock.Unlock()
	for _, ac := range all {
		ac.cancel()
	}
	p.running.Wait()
}
