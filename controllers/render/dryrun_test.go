package render

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// TestRenderedObjectsPassAPIServer server-side dry-runs every object each tutorial's sample
// renders, in every cluster, against a real kube-apiserver holding the upstream Gateway API
// and Inference Extension CRDs and the GKE fixtures: a field the schemas do not know, a
// wrong type or a broken CEL rule fails here. The open-source provider's objects (the
// InferencePoolImport, the router without GKE's extension) are dry-run too.
func TestRenderedObjectsPassAPIServer(t *testing.T) {
	env := testenv.Start(t, testenv.CRDs())
	ctx := context.Background()
	type scenario struct {
		name     string
		svc      *v1alpha1.FleetInferenceService
		clusters []fleet.Cluster
	}
	var scenarios []scenario
	for _, tc := range Tutorials {
		scenarios = append(scenarios, scenario{tc.Seed, loadSample(t, tc.Sample), tc.Clusters})
	}
	oss := loadSample(t, "fleet_v1alpha1_two-region-h100.yaml")
	oss.Spec.Gateway.Provider = v1alpha1.ProviderInferencePoolImport
	oss.Spec.Gateway.ClassName = "istio"
	oss.Spec.Gateway.BodyBasedRouting = true
	oss.Spec.Balancing = v1alpha1.BalancingSpec{}
	v1alpha1.SetDefaults(oss)
	scenarios = append(scenarios, scenario{"004-open-source", oss, Tutorials[4].Clusters})

	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			out, err := Fleet([]*v1alpha1.FleetInferenceService{sc.svc}, map[string]*corev1.Secret{sc.svc.Namespace + "/" + sc.svc.Name: tokenFor(sc.svc)}, sc.clusters)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for cluster, objs := range out {
				for _, o := range objs {
					u, err := asUnstructured(o)
					if err != nil {
						t.Fatal(err)
					}
					err = env.Client.Patch(ctx, u, client.Apply, client.DryRunAll, client.FieldValidation("Strict"), client.FieldOwner("inferfleet-hub"), client.ForceOwnership)
					if err != nil {
						t.Errorf("cluster %q: %s %s rejected: %v", cluster, u.GetKind(), u.GetName(), err)
					}
					n++
				}
			}
			if n < 10 {
				t.Errorf("only %d objects rendered", n)
			}
		})
	}
}

func asUnstructured(o client.Object) (*unstructured.Unstructured, error) {
	if u, ok := o.(*unstructured.Unstructured); ok {
		return u.DeepCopy(), nil
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u, nil
}
