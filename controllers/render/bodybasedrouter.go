// Body-based router objects beside one Gateway.
//
// BodyBasedRouter mirrors what the `body-based-routing` Helm chart of
// sigs.k8s.io/gateway-api-inference-extension v1.5.0 (config/charts/body-based-routing)
// renders for release name <gateway>, release namespace <gateway's namespace> and these
// values:
//
//	bbr.name: BodyBasedRouterName(<gateway>), "<gateway>-bbr"
//	provider.name: gke when the Gateway's provider is GKE, else none
//	inferenceGateway.name: <gateway>
//	everything else: the chart's values.yaml defaults (one replica, image
//	registry.k8s.io/gateway-api-inference-extension/bbr:v1.5.0, port 9004, health port 9005,
//	the model-extractor and base-model-mapper plugins, tracing off, one namespace).
//
// Templates mirrored: rbac.yaml (ServiceAccount, Role, RoleBinding: multiNamespace off),
// bbr.yaml (Service, Deployment) and, for provider gke, gke.yaml (the GCPRoutingExtension
// that attaches the router to the Gateway, and the router's HealthCheckPolicy). istio.yaml
// needs provider istio. The router sets X-Gateway-Model-Name from the request body's
// "model", which the HTTPRoutes match, so one Gateway routes each model name to its pool.
//
// Differences on purpose, so that two Gateways in one namespace each get their own router:
//   - bbr.name is "<gateway>-bbr" (the chart's default is body-based-router), which names the
//     Deployment, Service, app label and GCPRoutingExtension;
//   - the chart names its HealthCheckPolicy bbr-healthcheck whatever the release; here it is
//     "<bbr.name>-healthcheck";
//   - every object carries the hub's Gateway labels (GatewayLabels), which the chart leaves
//     unlabelled; the pod template and selectors carry only the chart's app label;
//   - the Service's port carries targetPort = port, as the chart writes it.
//
// Objects come in the chart's order: ServiceAccount, Role, RoleBinding, Service, Deployment,
// then the GKE objects.

package render

import (
	"encoding/json"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

const (
	// BodyBasedRouterImage is values.yaml bbr.image at chart v1.5.0.
	BodyBasedRouterImage       = "registry.k8s.io/gateway-api-inference-extension/bbr:v1.5.0"
	bbrPort              int32 = 9004 // values.yaml bbr.port
	bbrHealthPort        int32 = 9005 // values.yaml bbr.healthCheckPort
	bbrVerbosity               = "3"  // values.yaml bbr.flags.v
)

// GVKGCPRoutingExtension is GKE's service extension on a Gateway's traffic.
var GVKGCPRoutingExtension = schema.GroupVersionKind{Group: "networking.gke.io", Version: "v1", Kind: "GCPRoutingExtension"}

// BodyBasedRouterName is the router's bbr.name for a Gateway: "<gateway>-bbr", the Gateway's
// name cut to 59 characters so that the Service name stays a DNS-1035 label.
func BodyBasedRouterName(gateway string) string {
	if len(gateway) > 59 {
		gateway = gateway[:59]
	}
	return gateway + "-bbr"
}

// bbrPlugins are values.yaml bbr.plugins as bbr.yaml renders them into --plugin flags:
// type:name[:json].
func bbrPlugins() []string {
	cfg, _ := json.Marshal(map[string]string{"fieldName": "model", "headerName": ModelNameHeader})
	return []string{"body-field-to-header:model-extractor:" + string(cfg), "base-model-to-header:base-model-mapper"}
}

// BodyBasedRouter renders the body-based router of the Gateway in: what the chart renders
// for it (see the file comment), labelled as the Gateway's.
func BodyBasedRouter(in GatewayInput) []client.Object {
	name := BodyBasedRouterName(in.Name)
	release := in.Name
	ns := in.Namespace
	labels := func() map[string]string { return GatewayLabels(in.Name) }
	meta := func(n string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: n, Namespace: ns, Labels: labels()}
	}
	sa := name + "-" + release
	app := map[string]string{"app": name}

	var args []string
	args = append(args, "--streaming", "--v", bbrVerbosity)
	for _, p := range bbrPlugins() {
		args = append(args, "--plugin", p)
	}
	args = append(args, "--tracing=false")

	objs := []client.Object{
		&corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: meta(sa)},
		&rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
			ObjectMeta: meta(sa + "-configmap-reader"),
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}}},
		},
		&rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
			ObjectMeta: meta(sa),
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: sa + "-configmap-reader"},
		},
		&corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: meta(name),
			Spec: corev1.ServiceSpec{
				Selector: app,
				Ports: []corev1.ServicePort{{
					Protocol: corev1.ProtocolTCP, Port: bbrPort, TargetPort: intstr.FromInt32(bbrPort), AppProtocol: ptr.To("HTTP2"),
				}},
				Type: corev1.ServiceTypeClusterIP,
			},
		},
		&appsv1.Deployment{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: meta(name),
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](1),
				Selector: &metav1.LabelSelector{MatchLabels: app},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
					Spec: corev1.PodSpec{
						ServiceAccountName: sa,
						Containers: []corev1.Container{{
							Name:            "bbr",
							Image:           BodyBasedRouterImage,
							ImagePullPolicy: corev1.PullAlways,
							Args:            args,
							Env: []corev1.EnvVar{{Name: "NAMESPACE", ValueFrom: &corev1.EnvVarSource{
								FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"},
							}}},
							Ports: []corev1.ContainerPort{{ContainerPort: bbrPort}, {ContainerPort: bbrHealthPort}},
						}},
					},
				},
			},
		},
	}
	if in.Provider != v1alpha1.ProviderGKE {
		return objs
	}
	ext := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{
		"targetRefs": []any{map[string]any{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": in.Name}},
		"extensionChains": []any{map[string]any{
			"name": "chain1",
			"extensions": []any{map[string]any{
				"name":                "ext1",
				"authority":           "myext.com",
				"timeout":             "1s",
				"supportedEvents":     []any{"RequestHeaders", "RequestBody", "RequestTrailers"},
				"requestBodySendMode": "FullDuplexStreamed",
				"backendRef":          map[string]any{"group": "", "kind": "Service", "name": name, "port": int64(bbrPort)},
			}},
		}},
	}}}
	ext.SetGroupVersionKind(GVKGCPRoutingExtension)
	hc := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{
		"default": map[string]any{
			"logConfig": map[string]any{"enabled": true},
			"config": map[string]any{
				"type":            "GRPC",
				"grpcHealthCheck": map[string]any{"portSpecification": "USE_FIXED_PORT", "port": int64(bbrHealthPort)},
			},
		},
		"targetRef": map[string]any{"group": "", "kind": "Service", "name": name, "namespace": ns},
	}}}
	hc.SetGroupVersionKind(GVKHealthCheckPolicy)
	for u, n := range map[*unstructured.Unstructured]string{ext: name, hc: name + "-healthcheck"} {
		u.SetName(n)
		u.SetNamespace(ns)
		u.SetLabels(labels())
	}
	return append(objs, ext, hc)
}
