// Package clusterprofile is the cluster source of SIG Multicluster's Cluster Inventory API:
// every ClusterProfile (multicluster.x-k8s.io/v1alpha1) in a namespace of the hub is a
// member, with the profile's labels, its region, and its ControlPlaneHealthy condition as
// a health signal beside the hub's own probe.
//
// multicluster-runtime has a provider for this API, but no version of it is served for our
// pinned stack, so this source reads the same API and follows the same conventions: a
// profile's credentials are a kubeconfig in a Secret of the profile's namespace labelled
// x-k8s.io/cluster-inventory-consumer=<consumer> and x-k8s.io/cluster-profile=<profile>,
// under the key "Config". The source registers each profile like any other source does
// (a registration Secret in the hub's namespace), so placement, health, cordons and
// `fleetctl clusters` treat its members as every other.
package clusterprofile

import (
	"context"
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cpv1alpha1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/fleet"
)

// SourceName is the source's name (--cluster-source clusterprofile).
const SourceName = "clusterprofile"

// The credential Secret convention of multicluster-runtime's cluster-inventory-api
// provider (its Secret strategy).
const (
	LabelConsumer       = "x-k8s.io/cluster-inventory-consumer"
	LabelProfile        = "x-k8s.io/cluster-profile"
	KubeconfigKey       = "Config"
	DefaultConsumerName = "inferfleet"
)

// Options configure the source.
type Options struct {
	// Namespace holds the ClusterProfiles and their credential Secrets. Whoever may write
	// there may add members: grant it as the registration namespace is granted.
	Namespace string
	// ConsumerName is the x-k8s.io/cluster-inventory-consumer label value of the hub's
	// credential Secrets (default "inferfleet").
	ConsumerName string
	// Reader reads the hub (profiles and Secrets).
	Reader client.Reader
}

// Source lists ClusterProfiles. It implements fleet.Source.
type Source struct{ opts Options }

var _ fleet.Source = &Source{}

// New returns the source.
func New(o Options) *Source {
	if o.ConsumerName == "" {
		o.ConsumerName = DefaultConsumerName
	}
	return &Source{opts: o}
}

// Name is SourceName.
func (s *Source) Name() string { return SourceName }

// Discover returns a registration per ClusterProfile in the namespace. A profile without
// credentials for the hub is registered without a kubeconfig, and unhealthy with the
// reason, so that status says what is missing.
func (s *Source) Discover(ctx context.Context) ([]fleet.Registration, error) {
	var profiles cpv1alpha1.ClusterProfileList
	if err := s.opts.Reader.List(ctx, &profiles, client.InNamespace(s.opts.Namespace)); err != nil {
		if meta.IsNoMatchError(err) {
			return nil, fmt.Errorf("the hub does not serve ClusterProfiles (%s): install the Cluster Inventory API CRD: %w", cpv1alpha1.GroupVersion, err)
		}
		return nil, fmt.Errorf("list ClusterProfiles in %s: %w", s.opts.Namespace, err)
	}
	var secrets corev1.SecretList
	if err := s.opts.Reader.List(ctx, &secrets, client.InNamespace(s.opts.Namespace), client.MatchingLabels{LabelConsumer: s.opts.ConsumerName}); err != nil {
		return nil, fmt.Errorf("list credential Secrets in %s: %w", s.opts.Namespace, err)
	}
	creds := map[string][]*corev1.Secret{}
	for i := range secrets.Items {
		sec := &secrets.Items[i]
		if p := sec.Labels[LabelProfile]; p != "" && sec.DeletionTimestamp == nil {
			creds[p] = append(creds[p], sec)
		}
	}
	regs := make([]fleet.Registration, 0, len(profiles.Items))
	for i := range profiles.Items {
		p := &profiles.Items[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		regs = append(regs, s.registration(p, creds[p.Name]))
	}
	return regs, nil
}

// registration is one profile as a member.
func (s *Source) registration(p *cpv1alpha1.ClusterProfile, creds []*corev1.Secret) fleet.Registration {
	labels := maps.Clone(p.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	reg := fleet.Registration{Cluster: fleet.Cluster{Name: p.Name, Region: Region(p), Labels: labels}}
	switch {
	case len(creds) == 0:
		reg.Unhealthy = fmt.Sprintf("ClusterProfile %s/%s: no credentials for the hub: create a Secret in %s labelled %s=%s and %s=%s holding a kubeconfig under %q",
			p.Namespace, p.Name, p.Namespace, LabelConsumer, s.opts.ConsumerName, LabelProfile, p.Name, KubeconfigKey)
		return reg
	case len(creds) > 1:
		names := make([]string, len(creds))
		for i, c := range creds {
			names[i] = c.Name
		}
		reg.Unhealthy = fmt.Sprintf("ClusterProfile %s/%s: %d credential Secrets (%s): keep one", p.Namespace, p.Name, len(creds), strings.Join(names, ", "))
		return reg
	}
	kc := creds[0].Data[KubeconfigKey]
	if len(kc) == 0 {
		reg.Unhealthy = fmt.Sprintf("ClusterProfile %s/%s: credential Secret %s has no %q key", p.Namespace, p.Name, creds[0].Name, KubeconfigKey)
		return reg
	}
	reg.Kubeconfig = kc
	if c := meta.FindStatusCondition(p.Status.Conditions, cpv1alpha1.ClusterConditionControlPlaneHealthy); c != nil && c.Status == metav1.ConditionFalse {
		reg.Unhealthy = fmt.Sprintf("ClusterProfile %s/%s: %s=False (%s): %s", p.Namespace, p.Name, c.Type, c.Reason, c.Message)
	}
	return reg
}

// RegionProperty is the status property a cluster manager may publish the region in; the
// region label (topology.kubernetes.io/region) on the profile wins over it.
const RegionProperty = fleet.RegionLabel

// Region is a profile's region: its topology.kubernetes.io/region label, else the status
// property of that name.
func Region(p *cpv1alpha1.ClusterProfile) string {
	if r := p.Labels[fleet.RegionLabel]; r != "" {
		return r
	}
	for _, prop := range p.Status.Properties {
		if prop.Name == RegionProperty {
			return prop.Value
		}
	}
	return ""
}
