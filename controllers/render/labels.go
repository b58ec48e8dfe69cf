// Package render builds the objects the hub wants to exist, as pure functions of a
// FleetInferenceService and the cluster they go to: no client, no clock, no randomness.
// Reconcilers diff and apply what these functions return.
package render

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

// Ownership labels on every object the hub writes. An object lacking them, or carrying
// another service's, is not ours and is never overwritten.
const (
	LabelService   = "fleet.inferfleet.dev/service"
	LabelNamespace = "fleet.inferfleet.dev/namespace"
	LabelUID       = "fleet.inferfleet.dev/uid"
	// LabelManagedBy is app.kubernetes.io/managed-by=inferfleet-hub.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "inferfleet-hub"
	// LabelRole tells a service's member objects from its config-cluster objects, which
	// can live side by side when the config cluster is also a member.
	LabelRole  = "fleet.inferfleet.dev/role"
	RoleMember = "member"
	RoleConfig = "config"
	// AnnotationCreatedNamespace marks a namespace the hub created, so that only such a
	// namespace is ever deleted by it.
	AnnotationCreatedNamespace = "fleet.inferfleet.dev/created-by-hub"
)

// OwnerLabels are the labels naming svc as an object's owner.
func OwnerLabels(svc *v1alpha1.FleetInferenceService) map[string]string {
	return map[string]string{
		LabelService:   svc.Name,
		LabelNamespace: svc.Namespace,
		LabelUID:       string(svc.UID),
		LabelManagedBy: ManagedBy,
	}
}

// ModelLabels select svc's model-server pods in every member (the tutorials' app label,
// which the InferencePool selects too).
func ModelLabels(svc *v1alpha1.FleetInferenceService) map[string]string {
	return map[string]string{"app": svc.Name}
}

// ModelSelector is ModelLabels as a label selector string, for the scale subresource.
func ModelSelector(svc *v1alpha1.FleetInferenceService) string {
	return labels.SelectorFromSet(ModelLabels(svc)).String()
}

// OwnedBy reports whether obj carries svc's ownership labels (the UID included, so a
// recreated service with the same name does not inherit a stale object's ownership
// silently: it adopts only objects whose UID label it can match or that it rewrites).
func OwnedBy(obj client.Object, svc *v1alpha1.FleetInferenceService) bool {
	l := obj.GetLabels()
	return l[LabelService] == svc.Name && l[LabelNamespace] == svc.Namespace && l[LabelManagedBy] == ManagedBy
}

// withLabels returns base plus the ownership labels of svc for a member object
// (ownership wins on a clash).
func withLabels(svc *v1alpha1.FleetInferenceService, base map[string]string) map[string]string {
	out := make(map[string]string, len(base)+5)
	for k, v := range base {
		out[k] = v
	}
	for k, v := range OwnerLabels(svc) {
		out[k] = v
	}
	out[LabelRole] = RoleMember
	return out
}

// withConfigLabels are the ownership labels of svc for a config-cluster object.
func withConfigLabels(svc *v1alpha1.FleetInferenceService) map[string]string {
	out := OwnerLabels(svc)
	out[LabelRole] = RoleConfig
	return out
}

// GVKs of the objects rendered for members and the config cluster.
var (
	GVKInferencePool       = schema.GroupVersionKind{Group: "inference.networking.k8s.io", Version: "v1", Kind: "InferencePool"}
	GVKInferenceObjective  = schema.GroupVersionKind{Group: "inference.networking.x-k8s.io", Version: "v1alpha2", Kind: "InferenceObjective"}
	GVKInferencePoolImport = schema.GroupVersionKind{Group: "inference.networking.x-k8s.io", Version: "v1alpha1", Kind: "InferencePoolImport"}
	GVKAutoscalingMetric   = schema.GroupVersionKind{Group: "autoscaling.gke.io", Version: "v1beta1", Kind: "AutoscalingMetric"}
	GVKHealthCheckPolicy   = schema.GroupVersionKind{Group: "networking.gke.io", Version: "v1", Kind: "HealthCheckPolicy"}
	GVKGCPBackendPolicy    = schema.GroupVersionKind{Group: "networking.gke.io", Version: "v1", Kind: "GCPBackendPolicy"}
	GVKGCPInferencePoolImp = schema.GroupVersionKind{Group: "networking.gke.io", Version: "v1", Kind: "GCPInferencePoolImport"}
	GVKComputeClass        = schema.GroupVersionKind{Group: "cloud.google.com", Version: "v1", Kind: "ComputeClass"}
	// GVKPodMonitoring is Google Cloud Managed Service for Prometheus's PodMonitoring.
	GVKPodMonitoring = schema.GroupVersionKind{Group: "monitoring.googleapis.com", Version: "v1", Kind: "PodMonitoring"}
)

// EndpointPickerName is the name of the endpoint picker's Deployment, Service and
// ServiceAccount for svc: "<name>-epp", as the inferencepool chart names them.
func EndpointPickerName(svc *v1alpha1.FleetInferenceService) string { return svc.Name + "-epp" }

// Namespace renders the service's namespace as the hub creates it in a member where it is
// missing (marked, so that only such a namespace is ever deleted by the hub), and the
// namespace's default ServiceAccount, which pods need where no controller makes it.
func Namespace(svc *v1alpha1.FleetInferenceService) []client.Object {
	return []client.Object{
		&corev1.Namespace{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{
				Name:        svc.Namespace,
				Labels:      map[string]string{LabelManagedBy: ManagedBy},
				Annotations: map[string]string{AnnotationCreatedNamespace: "true"},
			},
		},
		&corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: svc.Namespace},
		},
	}
}
