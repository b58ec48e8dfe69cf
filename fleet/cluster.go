// Package fleet owns the member clusters: what a cluster is (name, region, labels), how the
// hub discovers them, their health, and where replicas go.
package fleet

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// How a member cluster is registered with the hub: a Secret in RegistrationNamespace whose
// name is the cluster's name, labelled KubeconfigLabel=true, holding a kubeconfig under
// KubeconfigKey. RegionLabel carries the cluster's region; every other label on the Secret
// (except those under the fleet.inferfleet.dev/ prefix) is a cluster label that placement
// selectors match.
//
// Clusters found by a discovery source (kind, GKE Hub) get the same registration Secret,
// written by the hub and labelled SourceLabel=<source>: with a kubeconfig when the source
// has one (kind), without one when the source connects to the cluster itself (GKE Hub,
// through the Connect Gateway). Either way every member has one registration, where its
// region, labels, cordon and reachability live.
const (
	RegistrationNamespace = "inferfleet-system"
	KubeconfigLabel       = "fleet.inferfleet.dev/kubeconfig"
	KubeconfigKey         = "kubeconfig"
	SourceLabel           = "fleet.inferfleet.dev/source"
	RegionLabel           = "topology.kubernetes.io/region"
	LabelPrefix           = "fleet.inferfleet.dev/"
	// AnnotationCordoned on a registration Secret takes the cluster out of every
	// service's placement, as a failover would; its value says who cordoned it and why.
	AnnotationCordoned = "fleet.inferfleet.dev/cordoned"
	// CordonProperty is the cordon as a ClusterProfile status property: its value says who
	// cordoned the cluster and why.
	CordonProperty = "cordoned.fleet.inferfleet.dev"
	// AnnotationSourceUnhealthy on a registration Secret is its discovery source's word
	// that the cluster is not healthy (a ClusterProfile whose ControlPlaneHealthy
	// condition is False), and why. The health monitor counts the cluster unreachable
	// while it is there, whatever its own probe finds.
	AnnotationSourceUnhealthy = "fleet.inferfleet.dev/source-unhealthy"
)

// IsRegistration reports whether a Secret's labels make it a cluster registration: a
// kubeconfig Secret, or a record written by a discovery source.
func IsRegistration(labels map[string]string) bool {
	return labels[KubeconfigLabel] == "true" || labels[SourceLabel] != ""
}

// RegistrationSecret is the registration Secret of cluster name in namespace, as every
// writer of one builds it: the given labels, RegionLabel when region is set and, when there
// is a kubeconfig, KubeconfigLabel=true with the kubeconfig under KubeconfigKey. The
// region and kubeconfig labels win over labels of the same keys; labels is not modified.
func RegistrationSecret(name, namespace, region string, kubeconfig []byte, labels map[string]string) *corev1.Secret {
	l := maps.Clone(labels)
	if l == nil {
		l = map[string]string{}
	}
	if region != "" {
		l[RegionLabel] = region
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: l},
		Type:       corev1.SecretTypeOpaque,
	}
	if len(kubeconfig) > 0 {
		l[KubeconfigLabel] = "true"
		s.Data = map[string][]byte{KubeconfigKey: kubeconfig}
	}
	return s
}

// Cluster is a member cluster as the hub knows it.
type Cluster struct {
	Name   string            `json:"name"`
	Region string            `json:"region,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// Cordoned clusters are out of every service's placement (the registration Secret
	// carries the cordon annotation): drills and maintenance.
	Cordoned bool `json:"cordoned,omitempty"`
	// SourceUnhealthy, when set, is why the cluster's discovery source says it is not
	// healthy (AnnotationSourceUnhealthy).
	SourceUnhealthy string `json:"sourceUnhealthy,omitempty"`
}
