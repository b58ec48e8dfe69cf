package render

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/fuzzspec"
)

// FuzzRender renders every service built from fuzz input (internal/fuzzspec) that passes
// Validate, for a fleet holding the clusters it selects, and server-side dry-runs every
// object against a real API server with the upstream and GKE CRDs: a valid service must
// render, without panicking, to objects the API server accepts as they are (strict field
// validation).
func FuzzRender(f *testing.F) {
	base, env := fuzzspec.Start(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, input []byte) {
		u := fuzzspec.Object(base, input)
		svc, err := fuzzspec.Decode(u.Object)
		if err != nil {
			return
		}
		svc.UID = "00000000-0000-0000-0000-000000000001"
		if svc.Validate() != nil {
			return
		}
		show := func() string { b, _ := yaml.Marshal(u.Object); return string(b) }
		out, err := Fleet([]*v1alpha1.FleetInferenceService{svc}, map[string]*corev1.Secret{svc.Namespace + "/" + svc.Name: tokenFor(svc)}, fuzzClusters(svc))
		if err != nil {
			t.Fatalf("a valid service does not render: %v\n%s", err, show())
		}
		for cluster, objs := range out {
			for _, o := range objs {
				obj, err := asUnstructured(o)
				if err != nil {
					t.Fatal(err)
				}
				callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err = env.Client.Patch(callCtx, obj, client.Apply, client.DryRunAll, client.FieldValidation("Strict"), client.FieldOwner("inferfleet-hub"), client.ForceOwnership)
				cancel()
				if err != nil {
					t.Fatalf("cluster %q: %s %s rejected: %v\nservice:\n%s", cluster, obj.GetKind(), obj.GetName(), err, show())
				}
			}
		}
	})
}

// fuzzClusters is a fleet holding the clusters svc selects, each in a region of its own.
func fuzzClusters(svc *v1alpha1.FleetInferenceService) []fleet.Cluster {
	names := []string{"gke-west", "gke-east"}
	if len(svc.Spec.Placement.Clusters) > 0 {
		names = names[:0]
		for _, c := range svc.Spec.Placement.Clusters {
			names = append(names, c.Name)
		}
	}
	var out []fleet.Cluster
	for i, n := range names {
		out = append(out, fleet.Cluster{Name: n, Region: fmt.Sprintf("region-%d", i), Labels: map[string]string{"tier": "gpu"}})
	}
	return out
}
