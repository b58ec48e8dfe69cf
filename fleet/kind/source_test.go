package kind

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

func TestRegionOf(t *testing.T) {
	for _, tc := range []struct{ name, prefix, nodes, want string }{
		{"inferfleet-west", "inferfleet-", "europe-west3", "europe-west3"},
		{"inferfleet-west--us-east4", "inferfleet-", "europe-west3", "europe-west3"}, // nodes win
		{"inferfleet-west--us-east4", "inferfleet-", "", "us-east4"},
		{"inferfleet-a--b--asia-east1", "inferfleet-", "", "asia-east1"},
		{"inferfleet-west", "inferfleet-", "", ""},
		// The prefix is not part of the convention: a prefix with "--" does not count.
		{"fleet--x", "fleet--", "", ""},
		{"west--", "", "", ""},
	} {
		if got := RegionOf(tc.name, tc.prefix, tc.nodes); got != tc.want {
			t.Errorf("RegionOf(%q, %q, %q) = %q, want %q", tc.name, tc.prefix, tc.nodes, got, tc.want)
		}
	}
}

func node(name string, labels map[string]string) corev1.Node {
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func TestRegionOfNodes(t *testing.T) {
	cp := map[string]string{"node-role.kubernetes.io/control-plane": "", fleet.RegionLabel: "us-east4"}
	worker := map[string]string{fleet.RegionLabel: "europe-west3"}
	if got := RegionOfNodes([]corev1.Node{node("w", worker), node("cp", cp)}); got != "us-east4" {
		t.Errorf("control plane's region should win, got %q", got)
	}
	if got := RegionOfNodes([]corev1.Node{node("a", nil), node("w", worker)}); got != "europe-west3" {
		t.Errorf("any node's region, got %q", got)
	}
	if got := RegionOfNodes([]corev1.Node{node("a", nil)}); got != "" {
		t.Errorf("no region label, got %q", got)
	}
}

// fakeKind is a kind Lister whose clusters map to kubeconfigs.
type fakeKind struct {
	mu       sync.Mutex
	clusters map[string]string // name -> kubeconfig
	order    []string
	err      error
	internal []bool
}

func (f *fakeKind) List() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.order...), f.err
}

func (f *fakeKind) KubeConfig(name string, internal bool) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.internal = append(f.internal, internal)
	kc, ok := f.clusters[name]
	if !ok {
		return "", errors.New("no such cluster " + name)
	}
	return kc, nil
}

// TestDiscover lists kind clusters through a fake kind whose kubeconfigs point at a real API
// server, so the region comes from real Node labels.
func TestDiscover(t *testing.T) {
	env := testenv.Start(t, nil)
	ctx := context.Background()
	kc, err := testenv.Kubeconfig(env.Config, "kind-west")
	if err != nil {
		t.Fatal(err)
	}
	n := node("west-control-plane", map[string]string{"node-role.kubernetes.io/control-plane": "", fleet.RegionLabel: "europe-west3"})
	if err := env.Client.Create(ctx, &n); err != nil {
		t.Fatal(err)
	}
	// An unreachable API server: the name's region is used, and it is asked again later.
	dead := strings.Replace(string(kc), env.Config.Host, "https://127.0.0.1:1", 1)
	fk := &fakeKind{clusters: map[string]string{
		"inferfleet-west":           string(kc),
		"inferfleet-east--us-east4": dead,
		"other-cluster":             string(kc),
		"inferfleet-plain":          dead,
	}, order: []string{"other-cluster", "inferfleet-west", "inferfleet-east--us-east4", "inferfleet-plain"}}
	asked := 0
	src := New(Options{Lister: fk, Internal: true, NodeRegion: func(ctx context.Context, kubeconfig []byte) (string, error) {
		asked++
		return nodeRegion(ctx, kubeconfig)
	}})
	if src.Name() != "kind" {
		t.Errorf("name %q", src.Name())
	}
	regs, err := src.Discover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range regs {
		got[r.Name] = r.Region
		if string(r.Kubeconfig) != fk.clusters[r.Name] {
			t.Errorf("%s: kubeconfig not passed through", r.Name)
		}
	}
	want := map[string]string{"inferfleet-west": "europe-west3", "inferfleet-east--us-east4": "us-east4", "inferfleet-plain": ""}
	if len(got) != len(want) {
		t.Errorf("discovered %v, want %v (other-cluster lacks the prefix)", got, want)
	}
	for k, v := range want {
		if r, ok := got[k]; !ok || r != v {
			t.Errorf("%s: region %q (found %t), want %q", k, r, ok, v)
		}
	}
	for _, in := range fk.internal {
		if !in {
			t.Error("Internal not passed to kind")
		}
	}

	// The reachable cluster's region is cached for its kubeconfig; unreachable ones are asked again.
	before := asked
	if _, err := src.Discover(ctx); err != nil {
		t.Fatal(err)
	}
	if asked-before != 2 {
		t.Errorf("second round asked %d clusters for their region, want 2 (only the unreachable ones)", asked-before)
	}

	// Every cluster when the prefix is "-".
	all, err := New(Options{Prefix: "-", Lister: fk, NodeRegion: func(context.Context, []byte) (string, error) { return "", nil }}).Discover(ctx)
	if err != nil || len(all) != 4 {
		t.Errorf("prefix - found %d clusters (%v), want 4", len(all), err)
	}

	// kind failing to list or to give a kubeconfig fails the round: nothing is unregistered.
	fk.order = append(fk.order, "inferfleet-vanished")
	if _, err := src.Discover(ctx); err == nil || !strings.Contains(err.Error(), "inferfleet-vanished") {
		t.Errorf("missing kubeconfig: err %v", err)
	}
	fk.err = errors.New("docker: connection refused")
	if _, err := src.Discover(ctx); err == nil || !strings.Contains(err.Error(), "list kind clusters") {
		t.Errorf("list failure: err %v", err)
	}
}

// TestNoEngine: without Docker, Podman or nerdctl the source says so and keeps failing
// (so registrations stay) instead of reporting no clusters.
func TestNoEngine(t *testing.T) {
	_, err := New(Options{Lister: noEngine{errors.New("no node provider detected")}}).Discover(context.Background())
	if err == nil || !strings.Contains(err.Error(), "container engine") {
		t.Errorf("err %v, want one naming the missing container engine", err)
	}
}
