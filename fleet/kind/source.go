// Package kind discovers member clusters among the kind clusters of this machine: every kind
// cluster whose name starts with a prefix is a member. The source registers each one with
// its kubeconfig in the hub (fleet.Registrar), so the hub's kubeconfig provider engages it
// and a re-created cluster (new certificates, new port) is reconnected by itself.
//
// A member's name is its kind cluster name. Its region is the topology.kubernetes.io/region
// label of its nodes when they carry one (kind's config sets node labels), otherwise what
// the name says after a double dash ("inferfleet-west--europe-west3" is in europe-west3),
// otherwise empty.
package kind

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"

	"github.com/inferfleet/inferfleet/fleet"
)

// SourceName labels the registrations of kind clusters.
const SourceName = "kind"

// DefaultPrefix is the name prefix of the kind clusters that are members by default.
const DefaultPrefix = "inferfleet-"

// regionSeparator splits a region off a cluster name: NAME--REGION.
const regionSeparator = "--"

var _ fleet.Source = &Source{}

// Lister is what the source needs of kind; kind's *cluster.Provider implements it.
type Lister interface {
	List() ([]string, error)
	KubeConfig(name string, internal bool) (string, error)
}

// Options configures the kind source.
type Options struct {
	// Prefix selects the member clusters by name. Default DefaultPrefix; "-" selects all.
	Prefix string
	// Internal uses the kubeconfig for the kind network (https://NAME-control-plane:6443),
	// for a hub that runs in a container on that network.
	Internal bool
	// Lister lists the kind clusters. Default: kind's provider for the container engine it
	// detects (Docker, Podman or nerdctl).
	Lister Lister
	// NodeRegion reads the region label of a cluster's nodes. Default: list the Nodes.
	NodeRegion func(ctx context.Context, kubeconfig []byte) (string, error)
}

// Source lists kind clusters. Create it with New.
type Source struct {
	opts Options

	mu      sync.Mutex
	regions map[string]cachedRegion // by cluster name
}

type cachedRegion struct {
	kubeconfigSum [32]byte
	region        string
}

// New fills in the defaults. Without a container engine it still returns a source, whose
// Discover then fails (and is retried) with kind's own error.
func New(o Options) *Source {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Prefix == "-" {
		o.Prefix = ""
	}
	if o.Lister == nil {
		o.Lister = defaultLister()
	}
	if o.NodeRegion == nil {
		o.NodeRegion = nodeRegion
	}
	return &Source{opts: o, regions: map[string]cachedRegion{}}
}

// defaultLister is kind's provider for the detected engine, or one that says why there is
// none.
func defaultLister() Lister {
	opt, err := kindcluster.DetectNodeProvider()
	if err != nil {
		return noEngine{err}
	}
	return kindcluster.NewProvider(opt)
}

type noEngine struct{ err error }

func (n noEngine) List() ([]string, error) {
	return nil, fmt.Errorf("kind needs a container engine (Docker, Podman or nerdctl) and none was found: %w", n.err)
}

func (n noEngine) KubeConfig(string, bool) (string, error) { return "", n.err }

// Name is the discovery source's name, "kind".
func (s *Source) Name() string { return SourceName }

// Discover lists the kind clusters with the prefix and their kubeconfigs. A cluster whose
// kubeconfig cannot be read fails the whole round, so nothing is unregistered on a hiccup.
func (s *Source) Discover(ctx context.Context) ([]fleet.Registration, error) {
	names, err := s.opts.Lister.List()
	if err != nil {
		return nil, fmt.Errorf("list kind clusters: %w", err)
	}
	var out []fleet.Registration
	seen := map[string]bool{}
	for _, name := range names {
		if !strings.HasPrefix(name, s.opts.Prefix) {
			continue
		}
		kc, err := s.opts.Lister.KubeConfig(name, s.opts.Internal)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig of kind cluster %s: %w", name, err)
		}
		seen[name] = true
		out = append(out, fleet.Registration{
			Cluster:    fleet.Cluster{Name: name, Region: s.region(ctx, name, []byte(kc))},
			Kubeconfig: []byte(kc),
		})
	}
	s.forget(seen)
	return out, nil
}

// region is the cluster's region from its nodes, read once per kubeconfig, or from its
// name. A cluster that cannot be asked yet (still starting) is asked again next round.
func (s *Source) region(ctx context.Context, name string, kubeconfig []byte) string {
	sum := sha256.Sum256(kubeconfig)
	s.mu.Lock()
	c, ok := s.regions[name]
	s.mu.Unlock()
	if ok && c.kubeconfigSum == sum {
		return c.region
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	fromNodes, err := s.opts.NodeRegion(ctx, kubeconfig)
	region := RegionOf(name, s.opts.Prefix, fromNodes)
	if err == nil {
		s.mu.Lock()
		s.regions[name] = cachedRegion{kubeconfigSum: sum, region: region}
		s.mu.Unlock()
	}
	return region
}

func (s *Source) forget(keep map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := range s.regions {
		if !keep[n] {
			delete(s.regions, n)
		}
	}
}

// RegionOf is a kind cluster's region: its nodes' region label when set, else the part of
// its name (after the prefix) that follows the last double dash, else empty.
func RegionOf(name, prefix, nodeRegion string) string {
	if nodeRegion != "" {
		return nodeRegion
	}
	rest := strings.TrimPrefix(name, prefix)
	if i := strings.LastIndex(rest, regionSeparator); i >= 0 {
		return rest[i+len(regionSeparator):]
	}
	return ""
}

// nodeRegion returns the region label of the cluster's control-plane node, or of any node
// when no control-plane node has one.
func nodeRegion(ctx context.Context, kubeconfig []byte) (string, error) {
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return "", err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("list nodes: %w", err)
	}
	return RegionOfNodes(nodes.Items), nil
}

// RegionOfNodes picks the region label of the first control-plane node that has one, else
// of the first node that has one.
func RegionOfNodes(nodes []corev1.Node) string {
	var any string
	for _, n := range nodes {
		r := n.Labels[fleet.RegionLabel]
		if r == "" {
			continue
		}
		if _, cp := n.Labels["node-role.kubernetes.io/control-plane"]; cp {
			return r
		}
		if any == "" {
			any = r
		}
	}
	return any
}

// ErrNoEngine reports whether err says that no container engine was found.
func ErrNoEngine(err error) bool {
	return errors.Is(err, kindcluster.NoNodeProviderDetectedError)
}
