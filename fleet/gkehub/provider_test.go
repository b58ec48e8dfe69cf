package gkehub

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/gkehub/apiv1beta1/gkehubpb"
	"github.com/go-logr/logr/funcr"
	"golang.org/x/oauth2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"

	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/fleet/gkehub/gkehubtest"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

func TestMain(m *testing.M) {
	// One line per log call: the provider's logs explain a failed wait.
	log.SetLogger(funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, prefix, args) }, funcr.Options{}))
	os.Exit(m.Run())
}

func TestMemberFromMembership(t *testing.T) {
	ready := gkehubpb.MembershipState_READY
	missing := gkehubtest.Membership("global", "gone", "us-east4", ready, nil)
	missing.GetEndpoint().GetGkeCluster().ClusterMissing = true
	attached := gkehubtest.Membership("global", "attached", "us-east4", ready, nil)
	attached.Type = &gkehubpb.Membership_Endpoint{Endpoint: &gkehubpb.MembershipEndpoint{
		Type: &gkehubpb.MembershipEndpoint_MultiCloudCluster{MultiCloudCluster: &gkehubpb.MultiCloudCluster{
			ResourceLink: "//gkemulticloud.googleapis.com/projects/p/locations/us-east4/attachedClusters/attached",
		}},
	}}
	zonesLink := gkehubtest.Membership("global", "old", "x", ready, nil)
	zonesLink.GetEndpoint().GetGkeCluster().ResourceLink = "//container.googleapis.com/projects/p/zones/europe-west3-c/clusters/old"

	tests := []struct {
		name          string
		in            *gkehubpb.Membership
		projectNumber string
		want          Member
		wantErr       string
	}{{
		name:          "zonal cluster, global membership",
		in:            gkehubtest.Membership("global", "gke-west", "europe-west3-c", ready, map[string]string{"env": "prod"}),
		projectNumber: "123456",
		want: Member{
			Cluster:            fleet.Cluster{Name: "gke-west", Region: "europe-west3", Labels: map[string]string{"env": "prod", fleet.RegionLabel: "europe-west3"}},
			ResourceLink:       "//container.googleapis.com/projects/p/locations/europe-west3-c/clusters/gke-west",
			Location:           "global",
			ConnectGatewayHost: "https://connectgateway.googleapis.com/v1/projects/123456/locations/global/gkeMemberships/gke-west",
			Ready:              true,
		},
	}, {
		name:          "regional cluster, regional membership uses the regional gateway",
		in:            gkehubtest.Membership("us-east4", "gke-east", "us-east4", ready, nil),
		projectNumber: "123456",
		want: Member{
			Cluster:            fleet.Cluster{Name: "gke-east", Region: "us-east4", Labels: map[string]string{fleet.RegionLabel: "us-east4"}},
			ResourceLink:       "//container.googleapis.com/projects/p/locations/us-east4/clusters/gke-east",
			Location:           "us-east4",
			ConnectGatewayHost: "https://us-east4-connectgateway.googleapis.com/v1/projects/123456/locations/us-east4/gkeMemberships/gke-east",
			Ready:              true,
		},
	}, {
		name: "no project number: the project of the membership name",
		in:   gkehubtest.Membership("global", "multi-dash", "northamerica-northeast1-b", gkehubpb.MembershipState_CREATING, nil),
		want: Member{
			Cluster:            fleet.Cluster{Name: "multi-dash", Region: "northamerica-northeast1", Labels: map[string]string{fleet.RegionLabel: "northamerica-northeast1"}},
			ResourceLink:       "//container.googleapis.com/projects/p/locations/northamerica-northeast1-b/clusters/multi-dash",
			Location:           "global",
			ConnectGatewayHost: "https://connectgateway.googleapis.com/v1/projects/p/locations/global/gkeMemberships/multi-dash",
			Ready:              false,
		},
	}, {
		name:          "older zones/ resource link",
		in:            zonesLink,
		projectNumber: "1",
		want: Member{
			Cluster:            fleet.Cluster{Name: "old", Region: "europe-west3", Labels: map[string]string{fleet.RegionLabel: "europe-west3"}},
			ResourceLink:       "//container.googleapis.com/projects/p/zones/europe-west3-c/clusters/old",
			Location:           "global",
			ConnectGatewayHost: "https://connectgateway.googleapis.com/v1/projects/1/locations/global/gkeMemberships/old",
			Ready:              true,
		},
	}, {
		name:          "READY but the GKE cluster is missing",
		in:            missing,
		projectNumber: "1",
		want: Member{
			Cluster:            fleet.Cluster{Name: "gone", Region: "us-east4", Labels: map[string]string{fleet.RegionLabel: "us-east4"}},
			ResourceLink:       "//container.googleapis.com/projects/p/locations/us-east4/clusters/gone",
			Location:           "global",
			ConnectGatewayHost: "https://connectgateway.googleapis.com/v1/projects/1/locations/global/gkeMemberships/gone",
			Ready:              false,
		},
	}, {
		name:    "attached cluster has no GKE endpoint",
		in:      attached,
		wantErr: "has no GKE cluster endpoint",
	}, {
		name:    "no endpoint at all",
		in:      &gkehubpb.Membership{Name: "projects/p/locations/global/memberships/bare"},
		wantErr: "has no GKE cluster endpoint",
	}, {
		name:    "malformed membership name",
		in:      &gkehubpb.Membership{Name: "memberships/x"},
		wantErr: "is not projects/P/locations/L/memberships/NAME",
	}, {
		name: "malformed resource link",
		in: func() *gkehubpb.Membership {
			m := gkehubtest.Membership("global", "bad", "us-east4", ready, nil)
			m.GetEndpoint().GetGkeCluster().ResourceLink = "//container.googleapis.com/clusters/bad"
			return m
		}(),
		wantErr: "GKE resource link",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MemberFromMembership(tt.in, tt.projectNumber)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != tt.want.Name || got.Region != tt.want.Region || !maps.Equal(got.Labels, tt.want.Labels) ||
				got.ResourceLink != tt.want.ResourceLink || got.Location != tt.want.Location ||
				got.ConnectGatewayHost != tt.want.ConnectGatewayHost || got.Ready != tt.want.Ready || got.Cordoned {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestMemberFromMembershipDoesNotAliasLabels(t *testing.T) {
	in := gkehubtest.Membership("global", "a", "us-east4", gkehubpb.MembershipState_READY, map[string]string{"env": "prod"})
	m, err := MemberFromMembership(in, "1")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := in.Labels[fleet.RegionLabel]; ok {
		t.Errorf("the region label was written into the membership's own labels")
	}
	m.Labels["env"] = "dev"
	if in.Labels["env"] != "prod" {
		t.Errorf("member labels alias the membership's labels")
	}
}

func TestNextBackoff(t *testing.T) {
	limit := 30 * time.Second
	got := []time.Duration{5 * time.Second}
	for range 4 {
		got = append(got, nextBackoff(got[len(got)-1], limit))
	}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 30 * time.Second, 30 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff sequence %v, want %v", got, want)
		}
	}
}

func TestNewValidatesAndDefaults(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without Project must fail")
	}
	if _, err := New(Options{Project: "p", UseEndpoint: true}); err != nil {
		t.Errorf("New with UseEndpoint: %v (the GKE API gives the endpoints)", err)
	}
	p, err := New(Options{Project: "p", PollInterval: 2 * time.Second, Backoff: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	o := p.opts
	if o.ProjectNumber != "p" || o.Location != "global" || o.LabelSelector == nil || o.Backoff != 2*time.Second {
		t.Errorf("defaults not filled: number %q location %q selector %v backoff %s", o.ProjectNumber, o.Location, o.LabelSelector, o.Backoff)
	}
	p, err = New(Options{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if p.opts.PollInterval != 30*time.Second || p.opts.Backoff != 5*time.Second {
		t.Errorf("default poll %s backoff %s, want 30s and 5s", p.opts.PollInterval, p.opts.Backoff)
	}
	if _, err := p.Discover(context.Background()); !errors.Is(err, fleet.ErrNotSynced) {
		t.Errorf("Discover before the first list = %v, want ErrNotSynced (registrations must stay)", err)
	}
	if _, err := p.Get(context.Background(), "any"); !errors.Is(err, multicluster.ErrClusterNotFound) {
		t.Errorf("Get before Start = %v, want ErrClusterNotFound", err)
	}
}

func TestClusterName(t *testing.T) {
	for link, want := range map[string]string{
		"//container.googleapis.com/projects/p/locations/europe-west3/clusters/west": "projects/p/locations/europe-west3/clusters/west",
		"//container.googleapis.com/projects/p/zones/us-east4-a/clusters/east":       "projects/p/locations/us-east4-a/clusters/east",
	} {
		if got, err := clusterName(link); err != nil || got != want {
			t.Errorf("clusterName(%q) = %q, %v; want %q", link, got, err, want)
		}
	}
	if _, err := clusterName("//container.googleapis.com/projects/p/clusters/x"); err == nil {
		t.Error("a malformed link must be an error")
	}
}

// TestUseEndpoint runs the provider in endpoint mode against a fake GKE Hub and a fake GKE
// API whose cluster endpoint and CA are a real API server's, which accepts the provider's
// OAuth token: the member is engaged at its endpoint, verified with its CA.
func TestUseEndpoint(t *testing.T) {
	const token = "ya29.fake-access-token"
	env := testenv.StartWith(t, testenv.Options{AdminToken: token})
	hub, hubOpts := gkehubtest.Start(t)
	hub.Set(gkehubtest.Membership("global", "west", "europe-west3-a", gkehubpb.MembershipState_READY, nil))
	gke, gkeOpts := gkehubtest.StartClusterManager(t)
	gke.Set("projects/p/locations/europe-west3-a/clusters/west", strings.TrimPrefix(env.Config.Host, "https://"), env.Config.CAData)

	p, err := New(Options{Project: "p", UseEndpoint: true, PollInterval: 200 * time.Millisecond,
		ClientOptions: hubOpts, ClusterManagerOptions: gkeOpts, TokenSource: staticToken(token)})
	if err != nil {
		t.Fatal(err)
	}
	aware := &recordingAware{}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- p.Start(ctx, aware) }()
	t.Cleanup(func() { cancel(); <-stopped })

	eventually(t, "west engaged", func() bool { return aware.active()["west"] != nil })
	cl := aware.active()["west"].cluster
	if cl.GetConfig().Host != env.Config.Host {
		t.Errorf("engaged at %s, want the cluster endpoint %s", cl.GetConfig().Host, env.Config.Host)
	}
	var ns corev1.Namespace
	if err := cl.GetClient().Get(ctx, client.ObjectKey{Name: "default"}, &ns); err != nil {
		t.Errorf("read through the endpoint with the token: %v", err)
	}
	if asked := gke.Asked(); len(asked) == 0 || asked[0] != "projects/p/locations/europe-west3-a/clusters/west" {
		t.Errorf("GKE API asked for %v", asked)
	}

	// A cluster the GKE API does not know is not engaged; the others stay.
	hub.Set(gkehubtest.Membership("global", "west", "europe-west3-a", gkehubpb.MembershipState_READY, nil),
		gkehubtest.Membership("global", "gone", "us-east4", gkehubpb.MembershipState_READY, nil))
	eventually(t, "gone looked up", func() bool { return slices.Contains(gke.Asked(), "projects/p/locations/us-east4/clusters/gone") })
	if _, err := p.Get(ctx, "gone"); !errors.Is(err, multicluster.ErrClusterNotFound) {
		t.Errorf("Get(gone) = %v, want ErrClusterNotFound", err)
	}
	if aware.active()["west"] == nil {
		t.Error("west disengaged")
	}
	// Still registered: the health monitor reports it unreachable rather than it vanishing.
	regs, err := p.Discover(ctx)
	if err != nil || len(regs) != 2 {
		t.Errorf("Discover() = %+v, %v; want both members", regs, err)
	}
}

func TestConnectGatewayConfigAddsToken(t *testing.T) {
	cfg, err := connectGatewayConfig(staticToken("tok"))(Member{ConnectGatewayHost: "https://connectgateway.googleapis.com/v1/projects/1/locations/global/gkeMemberships/a"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://connectgateway.googleapis.com/v1/projects/1/locations/global/gkeMemberships/a" {
		t.Errorf("host %q", cfg.Host)
	}
	var seen string
	rt := cfg.WrapTransport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = r.Header.Get("Authorization")
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	}))
	req, _ := http.NewRequest(http.MethodGet, cfg.Host+"/api", nil)
	if _, err := rt.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if seen != "Bearer tok" {
		t.Errorf("Authorization %q, want the token source's bearer token", seen)
	}
}

// recordingAware records every Engage and watches its context for the disengage.
type recordingAware struct {
	mu          sync.Mutex
	engagements []*engagement
}

type engagement struct {
	name    string
	cluster cluster.Cluster
	ctx     context.Context
	done    chan struct{} // closed when the engage context is cancelled
}

func (a *recordingAware) Engage(ctx context.Context, name multicluster.ClusterName, cl cluster.Cluster) error {
	e := &engagement{name: string(name), cluster: cl, ctx: ctx, done: make(chan struct{})}
	go func() {
		<-ctx.Done()
		close(e.done)
	}()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.engagements = append(a.engagements, e)
	return nil
}

// active returns the engagements whose context is alive, by cluster name. A cluster with
// two live engagements would be served twice: it is reported under name+"#dup".
func (a *recordingAware) active() map[string]*engagement {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]*engagement{}
	for _, e := range a.engagements {
		if e.ctx.Err() != nil {
			continue
		}
		if out[e.name] != nil {
			out[e.name+"#dup"] = e
			continue
		}
		out[e.name] = e
	}
	return out
}

func (a *recordingAware) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.engagements)
}

func activeNames(a *recordingAware) []string {
	var names []string
	for n := range a.active() {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

type harness struct {
	hub      *gkehubtest.Hub
	provider *Provider
	aware    *recordingAware
	// hosts are the Connect Gateway hosts RESTConfigFor was asked for, by member.
	mu    sync.Mutex
	hosts map[string]string
	// created counts the clusters the provider built.
	created int
}

// startProvider runs a provider against a fake hub; every member's rest.Config is a copy of
// the one envtest API server's, while the host the provider would have used is recorded.
func startProvider(t *testing.T, env *testenv.Env, opts Options, ms ...*gkehubpb.Membership) *harness {
	t.Helper()
	hub, clientOpts := gkehubtest.Start(t)
	hub.Set(ms...)
	h := &harness{hub: hub, aware: &recordingAware{}, hosts: map[string]string{}}
	opts.Project = "p"
	opts.ClientOptions = clientOpts
	opts.RESTConfigFor = func(m Member) (*rest.Config, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.hosts[m.Name] = m.ConnectGatewayHost
		return rest.CopyConfig(env.Config), nil
	}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	p.newCluster = func(cfg *rest.Config, o ...cluster.Option) (cluster.Cluster, error) {
		h.mu.Lock()
		h.created++
		h.mu.Unlock()
		return cluster.New(cfg, o...)
	}
	h.provider = p
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- p.Start(ctx, h.aware) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-stopped:
			if err != nil {
				t.Errorf("Start returned %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Start did not return after its context was cancelled")
		}
		if n := len(h.aware.active()); n != 0 {
			t.Errorf("%d clusters still engaged after the provider stopped", n)
		}
	})
	return h
}

func (h *harness) host(name string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hosts[name]
}

func (h *harness) createdClusters() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.created
}

// TestProvider runs the provider against a fake GKE Hub and one real API server that
// stands in for every member.
func TestProvider(t *testing.T) {
	env := testenv.Start(t, nil)
	ready := gkehubpb.MembershipState_READY

	t.Run("engages READY GKE memberships and follows changes", func(t *testing.T) {
		h := startProvider(t, env, Options{ProjectNumber: "123456", Location: "-", PollInterval: 50 * time.Millisecond},
			gkehubtest.Membership("global", "gke-west", "europe-west3-c", ready, map[string]string{"env": "prod"}),
			gkehubtest.Membership("us-east4", "gke-east", "us-east4", ready, map[string]string{"env": "prod"}),
			gkehubtest.Membership("global", "gke-east-2", "us-east4-a", ready, nil),
			gkehubtest.Membership("global", "gke-creating", "us-east4-b", gkehubpb.MembershipState_CREATING, nil),
			&gkehubpb.Membership{Name: "projects/p/locations/global/memberships/on-prem", State: &gkehubpb.MembershipState{Code: ready}},
		)
		eventually(t, "3 engaged clusters", func() bool { return len(h.aware.active()) == 3 })
		ctx := context.Background()

		want := []struct{ name, region, host string }{
			{"gke-east", "us-east4", "https://us-east4-connectgateway.googleapis.com/v1/projects/123456/locations/us-east4/gkeMemberships/gke-east"},
			{"gke-east-2", "us-east4", "https://connectgateway.googleapis.com/v1/projects/123456/locations/global/gkeMemberships/gke-east-2"},
			{"gke-west", "europe-west3", "https://connectgateway.googleapis.com/v1/projects/123456/locations/global/gkeMemberships/gke-west"},
		}
		got := h.provider.List()
		if len(got) != len(want) {
			t.Fatalf("List() = %+v, want %d members", got, len(want))
		}
		active := h.aware.active()
		for i, w := range want {
			m := got[i]
			if m.Name != w.name || m.Region != w.region || m.ConnectGatewayHost != w.host || !m.Ready {
				t.Errorf("member %d = %+v, want %s in %s via %s", i, m, w.name, w.region, w.host)
			}
			if m.Labels[fleet.RegionLabel] != w.region {
				t.Errorf("%s region label %q, want %q", w.name, m.Labels[fleet.RegionLabel], w.region)
			}
			if h.host(w.name) != w.host {
				t.Errorf("RESTConfigFor(%s) was given host %q, want %q", w.name, h.host(w.name), w.host)
			}
			cl, err := h.provider.Get(ctx, multicluster.ClusterName(w.name))
			if err != nil {
				t.Fatalf("Get(%s): %v", w.name, err)
			}
			if e := active[w.name]; e == nil || e.cluster != cl {
				t.Errorf("Get(%s) is not the engaged cluster", w.name)
			}
			// The cluster is live: its client reads from the real API server.
			var ns corev1.Namespace
			if err := cl.GetClient().Get(ctx, client.ObjectKey{Name: "default"}, &ns); err != nil {
				t.Errorf("read through %s: %v", w.name, err)
			}
		}
		if got[0].Labels["env"] != "prod" || got[2].Labels["env"] != "prod" || got[1].Labels["env"] != "" {
			t.Errorf("membership labels not carried: %+v", got)
		}
		lister, err := h.provider.Lister().List(ctx)
		if err != nil || len(lister) != 3 || lister[2].Name != "gke-west" || lister[2].Region != "europe-west3" {
			t.Errorf("Lister().List() = %+v, %v", lister, err)
		}
		regs, err := h.provider.Discover(ctx)
		if err != nil || len(regs) != 3 {
			t.Fatalf("Discover() = %+v, %v; want the 3 members", regs, err)
		}
		for i, r := range regs {
			if r.Name != want[i].name || r.Region != want[i].region || len(r.Kubeconfig) != 0 {
				t.Errorf("registration %d = %+v, want %s in %s without a kubeconfig", i, r, want[i].name, want[i].region)
			}
		}
		for _, skipped := range []string{"gke-creating", "on-prem"} {
			if _, err := h.provider.Get(ctx, multicluster.ClusterName(skipped)); !errors.Is(err, multicluster.ErrClusterNotFound) {
				t.Errorf("Get(%s) = %v, want ErrClusterNotFound", skipped, err)
			}
		}
		for _, c := range h.hub.Calls() {
			if c.Parent != "projects/p/locations/-" {
				t.Fatalf("ListMemberships parent %q, want projects/p/locations/-", c.Parent)
			}
		}

		// Several polls later nothing is re-created: unchanged members stay engaged once.
		engaged := h.aware.count()
		calls := len(h.hub.Calls())
		eventually(t, "3 more polls", func() bool { return len(h.hub.Calls()) >= calls+3 })
		if h.aware.count() != engaged || h.createdClusters() != engaged {
			t.Errorf("unchanged memberships were re-engaged: %d engagements, %d clusters, want %d", h.aware.count(), h.createdClusters(), engaged)
		}

		// gke-west is unregistered, gke-east-2 starts deleting, gke-creating becomes READY.
		west, east2 := active["gke-west"], active["gke-east-2"]
		h.hub.Set(
			gkehubtest.Membership("us-east4", "gke-east", "us-east4", ready, map[string]string{"env": "prod"}),
			gkehubtest.Membership("global", "gke-east-2", "us-east4-a", gkehubpb.MembershipState_DELETING, nil),
			gkehubtest.Membership("global", "gke-creating", "us-east4-b", ready, nil),
		)
		for _, e := range []*engagement{west, east2} {
			select {
			case <-e.done:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s was not disengaged", e.name)
			}
		}
		eventually(t, "gke-creating engaged", func() bool { return h.aware.active()["gke-creating"] != nil })
		for _, gone := range []string{"gke-west", "gke-east-2"} {
			if _, err := h.provider.Get(ctx, multicluster.ClusterName(gone)); !errors.Is(err, multicluster.ErrClusterNotFound) {
				t.Errorf("Get(%s) after removal = %v, want ErrClusterNotFound", gone, err)
			}
		}
		if names := activeNames(h.aware); !slices.Equal(names, []string{"gke-creating", "gke-east"}) {
			t.Errorf("engaged %v, want [gke-creating gke-east]", names)
		}

		// A label change re-creates the cluster: the old engagement ends, a new one begins.
		east := h.aware.active()["gke-east"]
		h.hub.Set(
			gkehubtest.Membership("us-east4", "gke-east", "us-east4", ready, map[string]string{"env": "canary"}),
			gkehubtest.Membership("global", "gke-creating", "us-east4-b", ready, nil),
		)
		select {
		case <-east.done:
		case <-time.After(10 * time.Second):
			t.Fatal("gke-east was not disengaged after its labels changed")
		}
		eventually(t, "gke-east re-engaged", func() bool { return h.aware.active()["gke-east"] != nil })
		if h.aware.active()["gke-east"].cluster == east.cluster {
			t.Error("gke-east was re-engaged with the old cluster")
		}
		if l := h.provider.List(); len(l) != 2 || l[1].Name != "gke-east" || l[1].Labels["env"] != "canary" {
			t.Errorf("List() after the label change = %+v", l)
		}
	})

	t.Run("API errors keep the clusters and back off", func(t *testing.T) {
		const backoff, poll = 20 * time.Millisecond, 400 * time.Millisecond
		h := startProvider(t, env, Options{PollInterval: poll, Backoff: backoff},
			gkehubtest.Membership("global", "a", "us-east4-a", ready, nil),
			gkehubtest.Membership("global", "b", "europe-west3", ready, nil),
		)
		eventually(t, "a and b engaged", func() bool { return len(h.aware.active()) == 2 })
		b := h.aware.active()["b"]

		// b leaves the fleet while the hub fails: only a successful list may disengage it.
		h.hub.Fail(6)
		h.hub.Set(gkehubtest.Membership("global", "a", "us-east4-a", ready, nil))
		failed := func() []gkehubtest.Call {
			var out []gkehubtest.Call
			for _, c := range h.hub.Calls() {
				if c.Failed {
					out = append(out, c)
				}
			}
			return out
		}
		eventually(t, "two failed lists", func() bool { return len(failed()) >= 2 })
		for _, name := range []string{"a", "b"} {
			if _, err := h.provider.Get(context.Background(), multicluster.ClusterName(name)); err != nil {
				t.Errorf("Get(%s) during API errors: %v", name, err)
			}
		}
		select {
		case <-b.done:
			t.Fatal("b was disengaged while the hub was failing")
		default:
		}

		// Recovery: the next successful list disengages b.
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			t.Fatal("b was not disengaged after the hub recovered")
		}
		if _, err := h.provider.Get(context.Background(), "a"); err != nil {
			t.Errorf("Get(a) after recovery: %v", err)
		}
		if _, err := h.provider.Get(context.Background(), "b"); !errors.Is(err, multicluster.ErrClusterNotFound) {
			t.Errorf("Get(b) after recovery = %v, want ErrClusterNotFound", err)
		}

		// The retries after each failure came after 20, 40, 80, 160, 320 ms, then the
		// capped 400 ms; the first one sooner than a poll would have.
		calls := h.hub.Calls()
		first := -1
		for i, c := range calls {
			if c.Failed {
				first = i
				break
			}
		}
		if first < 0 || len(calls) < first+7 {
			t.Fatalf("want 6 failed calls and a success, got %+v", calls)
		}
		wait := backoff
		for i := first + 1; i <= first+6; i++ {
			gap := calls[i].At.Sub(calls[i-1].At)
			if gap < wait {
				t.Errorf("retry %d came %s after the failure, want at least %s", i-first, gap, wait)
			}
			wait = min(2*wait, poll)
		}
		if gap := calls[first+1].At.Sub(calls[first].At); gap >= poll {
			t.Errorf("first retry after %s, want sooner than the poll interval %s", gap, poll)
		}
		if calls[first+6].Failed {
			t.Errorf("call after 6 failures failed too")
		}
	})

	t.Run("memberships in unreachable locations are kept", func(t *testing.T) {
		h := startProvider(t, env, Options{Location: "-", PollInterval: 50 * time.Millisecond},
			gkehubtest.Membership("us-east4", "east", "us-east4", ready, nil),
			gkehubtest.Membership("europe-west3", "west", "europe-west3", ready, nil),
		)
		eventually(t, "east and west engaged", func() bool { return len(h.aware.active()) == 2 })
		east := h.aware.active()["east"]
		h.hub.SetUnreachable("projects/p/locations/us-east4")
		h.hub.Set(gkehubtest.Membership("europe-west3", "west", "europe-west3", ready, nil))
		calls := len(h.hub.Calls())
		eventually(t, "3 more polls", func() bool { return len(h.hub.Calls()) >= calls+3 })
		select {
		case <-east.done:
			t.Fatal("a membership in an unreachable location was disengaged")
		default:
		}
		if regs, err := h.provider.Discover(context.Background()); err != nil || len(regs) != 2 || regs[0].Name != "east" {
			t.Errorf("Discover() while us-east4 is unreachable = %+v, %v; want east kept", regs, err)
		}
		h.hub.SetUnreachable()
		select {
		case <-east.done:
		case <-time.After(10 * time.Second):
			t.Fatal("east was not disengaged once its location answered without it")
		}
	})

	t.Run("label selector filters memberships", func(t *testing.T) {
		sel, err := labels.Parse("env=prod," + fleet.RegionLabel + " in (us-east4,europe-west3)")
		if err != nil {
			t.Fatal(err)
		}
		h := startProvider(t, env, Options{LabelSelector: sel, PollInterval: 50 * time.Millisecond},
			gkehubtest.Membership("global", "prod-east", "us-east4-a", ready, map[string]string{"env": "prod"}),
			gkehubtest.Membership("global", "dev-east", "us-east4-a", ready, map[string]string{"env": "dev"}),
			gkehubtest.Membership("global", "prod-asia", "asia-east1-b", ready, map[string]string{"env": "prod"}),
		)
		eventually(t, "prod-east engaged", func() bool { return h.aware.active()["prod-east"] != nil })
		calls := len(h.hub.Calls())
		eventually(t, "3 more polls", func() bool { return len(h.hub.Calls()) >= calls+3 })
		if names := activeNames(h.aware); !slices.Equal(names, []string{"prod-east"}) {
			t.Fatalf("engaged %v, want only prod-east", names)
		}
		h.hub.Set(
			gkehubtest.Membership("global", "prod-east", "us-east4-a", ready, map[string]string{"env": "prod"}),
			gkehubtest.Membership("global", "dev-east", "us-east4-a", ready, map[string]string{"env": "prod"}),
		)
		eventually(t, "dev-east engaged once relabelled prod", func() bool { return h.aware.active()["dev-east"] != nil })
	})
}

type staticToken string

func (s staticToken) Token() (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: string(s), TokenType: "Bearer"}, nil
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
