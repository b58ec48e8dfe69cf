// Package v1alpha1 holds the fleet.inferfleet.dev/v1alpha1 API: the FleetInferenceService a
// user applies to the hub, and everything it says about serving one model across a fleet.
// +kubebuilder:object:generate=true
// +groupName=fleet.inferfleet.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "fleet.inferfleet.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this API with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this API to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
