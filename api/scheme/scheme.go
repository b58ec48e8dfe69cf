// Package scheme builds the runtime.Scheme of every type the hub reads or writes typed:
// the built-in types, ours, the Gateway API's, the Inference Extension's and the Cluster
// Inventory API's ClusterProfile.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	cpv1alpha1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"
	infv1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"
	infv1alpha1 "sigs.k8s.io/gateway-api-inference-extension/apix/v1alpha1"
	infv1alpha2 "sigs.k8s.io/gateway-api-inference-extension/apix/v1alpha2"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

// New returns a new scheme with every type registered.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, infv1.Install, infv1alpha1.Install, infv1alpha2.Install, gwv1.Install, cpv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}
