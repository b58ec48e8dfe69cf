package render

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	infv1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"
	infv1alpha2 "sigs.k8s.io/gateway-api-inference-extension/apix/v1alpha2"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/fleet"
)

// Export annotations that make a member's InferencePool visible to the config cluster.
const (
	ExportAnnotationGKE   = "networking.gke.io/export"
	ExportValueGKE        = "True"
	ExportAnnotationMCS   = "inference.networking.x-k8s.io/export"
	ExportValueClusterSet = "ClusterSet"
	// eppPort is the endpoint picker's ext-proc port (the chart's extProcPort).
	eppPort = 9002
)

// MemberInput is what one member cluster's objects depend on besides the service.
type MemberInput struct {
	Cluster fleet.Cluster
	// Replicas is the share of spec.replicas placed on this cluster.
	Replicas int32
	// TokenSecret is the hub's Secret named by huggingFaceTokenSecretRef; required when the
	// service names one.
	TokenSecret *corev1.Secret
	// WithdrawExport leaves the export annotation off the pool: a failed-over GKE cluster
	// stops receiving traffic from the load balancer.
	WithdrawExport bool
}

// Member renders every object svc needs in one member cluster. svc must be defaulted
// (v1alpha1.SetDefaults); the result is deterministic.
func Member(svc *v1alpha1.FleetInferenceService, in MemberInput) ([]client.Object, error) {
	m := ModelServer(svc, in.Cluster.Name)
	var objs []client.Object
	if ref := m.Server.HuggingFaceTokenSecretRef; ref != nil {
		s, err := tokenSecret(svc, ref, in.TokenSecret)
		if err != nil {
			return nil, err
		}
		objs = append(objs, s)
	}
	if len(m.LoraAdapters) > 0 {
		cm, err := loraConfigMap(svc, m)
		if err != nil {
			return nil, err
		}
		objs = append(objs, cm)
	}
	objs = append(objs, computeClasses(svc, m)...)
	objs = append(objs, modelDeployment(svc, m, in.Replicas))
	regional := svc.Spec.Gateway.EffectiveMode() == v1alpha1.GatewayRegional
	epp := endpointPicker(svc)
	if regional {
		regionalPolicies(svc, epp)
	}
	objs = append(objs, epp...)
	pool := inferencePool(svc, m)
	if in.WithdrawExport || regional {
		// A regional Gateway routes to the pool in place: nothing imports it.
		pool.Annotations = nil
	}
	objs = append(objs, pool)
	objs = append(objs, objectives(svc)...)
	if svc.Spec.Gateway.Provider == v1alpha1.ProviderGKE && !regional {
		// The multi-cluster load balancer balances on the exported KV-cache metric.
		objs = append(objs, autoscalingMetric(svc, m))
	}
	return objs, nil
}

// regionalPolicies writes the gateway's settings into the endpoint picker's GKE policies on
// the InferencePool, which a regional Gateway uses as they are (the inferencepool chart
// renders them for provider gke): the health check's path and port, the backend timeout
// and access logging.
func regionalPolicies(svc *v1alpha1.FleetInferenceService, objs []client.Object) {
	g := svc.Spec.Gateway
	for _, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok || u.GetName() != svc.Name {
			continue
		}
		switch u.GroupVersionKind() {
		case GVKHealthCheckPolicy:
			_ = unstructured.SetNestedField(u.Object, g.HealthCheck.Path, "spec", "default", "config", "httpHealthCheck", "requestPath")
			_ = unstructured.SetNestedField(u.Object, int64(g.HealthCheck.Port), "spec", "default", "config", "httpHealthCheck", "port")
		case GVKGCPBackendPolicy:
			_ = unstructured.SetNestedField(u.Object, int64(g.TimeoutSeconds), "spec", "default", "timeoutSec")
			if l := g.Logging; l != nil {
				_ = unstructured.SetNestedField(u.Object, loggingPolicy(l), "spec", "default", "logging")
			}
		}
	}
}

// loggingPolicy is a GCPBackendPolicy's logging: GKE's sampleRate counts in millionths; the
// API takes a fraction.
func loggingPolicy(l *v1alpha1.LoggingSpec) map[string]any {
	if !l.Enabled {
		return map[string]any{"enabled": false}
	}
	rate := 1.0
	if l.SampleRate != nil {
		rate = *l.SampleRate
	}
	return map[string]any{"enabled": true, "sampleRate": int64(rate*1_000_000 + 0.5)}
}

// computeClasses renders the ComputeClasses of spec.computeClasses that the cluster's model
// server uses: cluster-scoped, owned by the service.
func computeClasses(svc *v1alpha1.FleetInferenceService, m v1alpha1.ModelSpec) []client.Object {
	var out []client.Object
	for i := range svc.Spec.ComputeClasses {
		c := &svc.Spec.ComputeClasses[i]
		if c.Name != m.ComputeClass {
			continue
		}
		spec, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
		if err != nil {
			// The API types always convert; a failure here is a programming error.
			panic(fmt.Sprintf("compute class %s: %v", c.Name, err))
		}
		delete(spec, "name")
		u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
		u.SetGroupVersionKind(GVKComputeClass)
		u.SetName(c.Name)
		u.SetLabels(withLabels(svc, nil))
		out = append(out, u)
	}
	return out
}

// TokenSecretName names a member's copy of the token Secret: one per service, so services
// that share a hub Secret never contend for one member object.
func TokenSecretName(svc *v1alpha1.FleetInferenceService) string { return svc.Name + "-hf-token" }

// tokenSecret copies only the referenced key of the hub's Secret.
func tokenSecret(svc *v1alpha1.FleetInferenceService, ref *v1alpha1.SecretKeyRef, hub *corev1.Secret) (*corev1.Secret, error) {
	if hub == nil {
		return nil, fmt.Errorf("secret %s/%s named by spec.model.server.huggingFaceTokenSecretRef not found in the hub", svc.Namespace, ref.Name)
	}
	if hub.Labels[v1alpha1.LabelCopyToMembers] != "true" {
		return nil, fmt.Errorf("secret %s/%s named by spec.model.server.huggingFaceTokenSecretRef is not labelled %s=true, which lets the hub copy it to member clusters: label it (kubectl label secret -n %s %s %s=true) to share it with them",
			svc.Namespace, ref.Name, v1alpha1.LabelCopyToMembers, svc.Namespace, ref.Name, v1alpha1.LabelCopyToMembers)
	}
	v, ok := hub.Data[ref.Key]
	if !ok {
		return nil, fmt.Errorf("secret %s/%s has no key %q (spec.model.server.huggingFaceTokenSecretRef.key)", svc.Namespace, ref.Name, ref.Key)
	}
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: TokenSecretName(svc), Namespace: svc.Namespace, Labels: withLabels(svc, nil)},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{ref.Key: v},
	}, nil
}

// ExportAnnotation is the annotation that exports svc's pools under its provider.
func ExportAnnotation(svc *v1alpha1.FleetInferenceService) (key, value string) {
	if svc.Spec.Gateway.Provider == v1alpha1.ProviderInferencePoolImport {
		return ExportAnnotationMCS, ExportValueClusterSet
	}
	return ExportAnnotationGKE, ExportValueGKE
}

// inferencePool selects the model server pods and names the endpoint picker (the chart's
// inferencepool.yaml), exported to the config cluster.
func inferencePool(svc *v1alpha1.FleetInferenceService, m v1alpha1.ModelSpec) *infv1.InferencePool {
	k, v := ExportAnnotation(svc)
	return &infv1.InferencePool{
		TypeMeta: metav1.TypeMeta{APIVersion: infv1.GroupVersion.String(), Kind: "InferencePool"},
		ObjectMeta: metav1.ObjectMeta{
			Name: svc.Name, Namespace: svc.Namespace,
			Labels:      withLabels(svc, map[string]string{"app.kubernetes.io/name": EndpointPickerName(svc)}),
			Annotations: map[string]string{k: v},
		},
		Spec: infv1.InferencePoolSpec{
			Selector:    infv1.LabelSelector{MatchLabels: map[infv1.LabelKey]infv1.LabelValue{"app": infv1.LabelValue(svc.Name)}},
			TargetPorts: []infv1.Port{{Number: infv1.PortNumber(m.Server.Port)}},
			AppProtocol: "http",
			EndpointPickerRef: infv1.EndpointPickerRef{
				Name:        infv1.ObjectName(EndpointPickerName(svc)),
				Port:        &infv1.Port{Number: eppPort},
				FailureMode: infv1.EndpointPickerFailureMode(svc.Spec.EndpointPicker.FailureMode),
			},
		},
	}
}

// objectives renders one InferenceObjective per spec.objectives entry: a model name (base
// model or LoRA adapter) the pool serves, with its priority.
func objectives(svc *v1alpha1.FleetInferenceService) []client.Object {
	var out []client.Object
	for _, o := range svc.Spec.Objectives {
		var prio *int
		if o.Priority != nil {
			prio = ptr.To(int(*o.Priority))
		}
		out = append(out, &infv1alpha2.InferenceObjective{
			TypeMeta:   metav1.TypeMeta{APIVersion: infv1alpha2.GroupVersion.String(), Kind: "InferenceObjective"},
			ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: svc.Namespace, Labels: withLabels(svc, nil)},
			Spec: infv1alpha2.InferenceObjectiveSpec{
				Priority: prio,
				PoolRef:  infv1alpha2.PoolObjectReference{Group: infv1alpha2.Group(infv1.GroupVersion.Group), Name: infv1alpha2.ObjectName(svc.Name)},
			},
		})
	}
	return out
}

// CustomMetricName is the exported KV-cache metric's name.
func CustomMetricName(svc *v1alpha1.FleetInferenceService) string {
	if cm := svc.Spec.Balancing.CustomMetric; cm != nil && cm.Name != "" {
		return cm.Name
	}
	return v1alpha1.DefaultCustomMetric
}

// autoscalingMetric exports the model servers' KV-cache use to the load balancer: vLLM's
// current gauge as <name> and the one before it as <name>-old, so either server version
// is balanced on.
func autoscalingMetric(svc *v1alpha1.FleetInferenceService, m v1alpha1.ModelSpec) *unstructured.Unstructured {
	name := CustomMetricName(svc)
	u := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{"app": svc.Name}},
			"endpoints": []any{map[string]any{
				"port": int64(m.Server.Port),
				"path": "/metrics",
				"metrics": []any{
					map[string]any{"name": fleet.VLLMKVCacheMetric, "exportName": name},
					map[string]any{"name": fleet.VLLMKVCacheMetricOld, "exportName": name + "-old"},
				},
			}},
		},
	}}
	u.SetGroupVersionKind(GVKAutoscalingMetric)
	u.SetName(svc.Name)
	u.SetNamespace(svc.Namespace)
	u.SetLabels(withLabels(svc, nil))
	return u
}
