// Package fleet owns the member clusters: what a cluster is (name, region, labels), how the
// hub discovers them, their health, and where replicas go.
package fleet

// How a member cluster is registered with the hub: a Secret in RegistrationNamespace whose
// name is the cluster's name, labelled KubeconfigLabel=true, holding a kubeconfig under
// KubeconfigKey. RegionLabel carries the cluster's region; every other label on the Secret
// (except those under the fleet.inferfleet.dev/ prefix) is a cluster label that placement
// selectors match.
const (
	RegistrationNamespace = "inferfleet-system"
	KubeconfigLabel       = "fleet.inferfleet.dev/kubeconfig"
	KubeconfigKey         = "kubeconfig"
	RegionLabel           = "topology.kubernetes.io/region"
	LabelPrefix           = "fleet.inferfleet.dev/"
)

// Cluster is a member cluster as the hub knows it.
type Cluster struct {
	Name   string            `json:"name"`
	Region string            `json:"region,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// Cordoned clusters are out of every service's placement (the registration Secret
	// carries the cordon annotation): drills and maintenance.
	Cordoned bool `json:"cordoned,omitempty"`
}
