package fleet

import "github.com/inferfleet/inferfleet/api/v1alpha1"

// EvenSplit spreads total replicas evenly over clusters in the given order: each gets
// total/n, and the first total%n get one more. Deterministic for the same inputs.
func EvenSplit(total int32, clusters []Cluster) map[string]int32 {
	out := make(map[string]int32, len(clusters))
	n := int32(len(clusters))
	if n == 0 {
		return out
	}
	for i, c := range clusters {
		out[c.Name] = total / n
		if int32(i) < total%n {
			out[c.Name]++
		}
	}
	return out
}

// Placement is where a service's replicas go.
type Placement struct {
	// Selected clusters, in placement order.
	Selected []Cluster
	// Shares maps each selected cluster to its replicas.
	Shares map[string]int32
	// Missing names clusters placement.clusters lists that are not registered.
	Missing []string
}

// Place selects a service's clusters among the registered ones and splits its replicas.
// svc must be defaulted.
func Place(svc *v1alpha1.FleetInferenceService, all []Cluster) (Placement, error) {
	names := make([]string, 0, len(svc.Spec.Placement.Clusters))
	for _, c := range svc.Spec.Placement.Clusters {
		names = append(names, c.Name)
	}
	selected, missing, err := Select(all, names, svc.Spec.Placement.ClusterSelector)
	if err != nil {
		return Placement{}, err
	}
	return Placement{Selected: selected, Shares: EvenSplit(svc.Spec.Replicas, selected), Missing: missing}, nil
}
