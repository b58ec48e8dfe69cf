package render

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/fleet"
)

// ConfigClusterKey is the key of the config cluster's objects in Fleet's result.
const ConfigClusterKey = ""

// Fleet renders every object the hub keeps for svcs in a fleet of clusters, with the
// placement spread of a healthy fleet: each selected member's objects, then each shared
// Gateway (with its body-based router) and every service's route and policies in the
// cluster that holds that Gateway, the config cluster (ConfigClusterKey) or, in mode
// Regional, the member. tokens holds each service's Hugging Face token Secret by the
// service's namespace/name. svcs must be defaulted and valid.
func Fleet(svcs []*v1alpha1.FleetInferenceService, tokens map[string]*corev1.Secret, clusters []fleet.Cluster) (map[string][]client.Object, error) {
	out := map[string][]client.Object{}
	type gatewayKey struct{ cluster, ns, name string }
	var keys []gatewayKey
	sharing := map[gatewayKey][]*v1alpha1.FleetInferenceService{}
	regions := map[string][]string{}
	for _, svc := range svcs {
		id := svc.Namespace + "/" + svc.Name
		p, err := fleet.Place(svc, clusters)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		if len(p.Missing) > 0 {
			return nil, fmt.Errorf("%s: placement names clusters not in the fleet: %v", id, p.Missing)
		}
		var names []string
		for _, c := range p.Selected {
			objs, err := Member(svc, MemberInput{Cluster: c, Replicas: p.Shares[c.Name], TokenSecret: tokens[id]})
			if err != nil {
				return nil, fmt.Errorf("%s in %s: %w", id, c.Name, err)
			}
			out[c.Name] = append(out[c.Name], objs...)
			names = append(names, c.Name)
			regions[svc.Name] = append(regions[svc.Name], c.Region)
		}
		at, err := GatewayCluster(svc, names)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		k := gatewayKey{at, svc.Namespace, svc.Spec.Gateway.Name}
		if _, ok := sharing[k]; !ok {
			keys = append(keys, k)
		}
		sharing[k] = append(sharing[k], svc)
	}
	for _, k := range keys {
		in := NewGatewayInput(sharing[k], regions)
		objs := GatewayObjects(in)
		for _, svc := range sharing[k] {
			if svc.Spec.Gateway.ClassName != in.ClassName {
				return nil, fmt.Errorf("%s/%s: gateway %s has class %s from %s, this service names %s", svc.Namespace, svc.Name, k.name, in.ClassName, sharing[k][0].Name, svc.Spec.Gateway.ClassName)
			}
			objs = append(objs, ConfigCluster(svc, in)...)
		}
		out[k.cluster] = append(out[k.cluster], objs...)
	}
	return out, nil
}
