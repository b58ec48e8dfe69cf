package render

import (
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	infv1alpha1 "sigs.k8s.io/gateway-api-inference-extension/apix/v1alpha1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

// Config-cluster objects: GKE's multi-cluster Inference Gateway (the Gateway, HTTPRoute,
// HealthCheckPolicy and GCPBackendPolicy of "Set up the GKE multi-cluster Inference
// Gateway", https://docs.cloud.google.com/kubernetes-engine/docs/how-to/setup-multicluster-inference-gateway)
// and the open-source InferencePoolImport (gateway-api-inference-extension proposal 1374).
const (
	// LabelGateway names the Gateway a shared, hub-owned Gateway object is.
	LabelGateway = "fleet.inferfleet.dev/gateway"
	// ModelNameHeader is set from the request body's "model" by body-based routing.
	ModelNameHeader = "X-Gateway-Model-Name"
	// GKEAddressTypePrefix + region is the address type of a cross-regional GKE Gateway.
	GKEAddressTypePrefix = "networking.gke.io/ephemeral-ipv4-address/"
	// ImportController is the controller name the hub writes into InferencePoolImports.
	ImportController = "inferfleet.dev/hub"
	// customMetricPrefix is how GKE names metrics exported by AutoscalingMetric.
	customMetricPrefix = "gke.named_metrics."
	// maxMatchesPerRule is Gateway API's limit on one HTTPRoute rule.
	maxMatchesPerRule = 64
)

// BackendPolicyUtilizationField is the GCPBackendPolicy field the renderer writes the
// custom metric's target into. The multi-cluster Inference Gateway guide writes
// maxUtilization; current GKE pages also document maxUtilizationPercent, with the same
// meaning (a whole percent).
const BackendPolicyUtilizationField = "maxUtilization"

// ConfigPolicyName names the config cluster's HealthCheckPolicy and GCPBackendPolicy of a
// service: distinct from the member-side policies of the same kinds, since the config
// cluster is often a member too.
func ConfigPolicyName(svc *v1alpha1.FleetInferenceService) string { return svc.Name + "-import" }

// GatewayInput is everything the shared Gateway depends on: the union over the services
// that name it.
type GatewayInput struct {
	Name, Namespace string
	ClassName       string
	Provider        v1alpha1.Provider
	// Regional: a regional Gateway in the member that holds the pool (no per-region
	// addresses); otherwise a multi-cluster Gateway in the config cluster.
	Regional bool
	// BodyBasedRouting: some service on the Gateway routes on the model in the body, so the
	// body-based router runs beside the Gateway.
	BodyBasedRouting bool
	// Ports are the distinct listener ports, sorted.
	Ports []int32
	// Regions are the distinct regions of the services' clusters, sorted.
	Regions []string
}

// NewGatewayInput combines the services sharing one Gateway, with each service's regions.
// The class and provider come from the first service (callers order them oldest first).
func NewGatewayInput(svcs []*v1alpha1.FleetInferenceService, regions map[string][]string) GatewayInput {
	in := GatewayInput{}
	ports := map[int32]bool{}
	regs := map[string]bool{}
	for i, s := range svcs {
		if i == 0 {
			in.Name, in.Namespace, in.ClassName, in.Provider = s.Spec.Gateway.Name, s.Namespace, s.Spec.Gateway.ClassName, s.Spec.Gateway.Provider
			in.Regional = s.Spec.Gateway.EffectiveMode() == v1alpha1.GatewayRegional
		}
		in.BodyBasedRouting = in.BodyBasedRouting || s.Spec.Gateway.BodyBasedRouting
		ports[s.Spec.Gateway.Port] = true
		for _, r := range regions[s.Name] {
			if r != "" {
				regs[r] = true
			}
		}
	}
	for p := range ports {
		in.Ports = append(in.Ports, p)
	}
	sort.Slice(in.Ports, func(i, j int) bool { return in.Ports[i] < in.Ports[j] })
	for r := range regs {
		in.Regions = append(in.Regions, r)
	}
	sort.Strings(in.Regions)
	return in
}

// ListenerName is the listener a service's route attaches to: "http" when the Gateway has
// one port, "http-<port>" when services sharing it use several.
func ListenerName(in GatewayInput, port int32) string {
	if len(in.Ports) <= 1 {
		return "http"
	}
	return fmt.Sprintf("http-%d", port)
}

// GatewayLabels are the labels of a shared Gateway: the hub's, without a service.
func GatewayLabels(name string) map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelGateway: name, LabelRole: RoleConfig}
}

// GatewayObjects are the objects shared by the services on one Gateway: the Gateway and,
// when one of them routes on the body, the body-based router.
func GatewayObjects(in GatewayInput) []client.Object {
	objs := []client.Object{Gateway(in)}
	if in.BodyBasedRouting {
		objs = append(objs, BodyBasedRouter(in)...)
	}
	return objs
}

// Gateway renders the shared Gateway: cross-regional with an ephemeral address in each
// member region, where the load balancer listens, or regional without addresses.
func Gateway(in GatewayInput) *gwv1.Gateway {
	g := &gwv1.Gateway{
		TypeMeta:   metav1.TypeMeta{APIVersion: gwv1.GroupVersion.String(), Kind: "Gateway"},
		ObjectMeta: metav1.ObjectMeta{Name: in.Name, Namespace: in.Namespace, Labels: GatewayLabels(in.Name)},
		Spec:       gwv1.GatewaySpec{GatewayClassName: gwv1.ObjectName(in.ClassName)},
	}
	if in.Provider == v1alpha1.ProviderGKE && !in.Regional {
		for _, r := range in.Regions {
			g.Spec.Addresses = append(g.Spec.Addresses, gwv1.GatewaySpecAddress{
				Type: ptr.To(gwv1.AddressType(GKEAddressTypePrefix + r)), Value: r,
			})
		}
	}
	for _, p := range in.Ports {
		g.Spec.Listeners = append(g.Spec.Listeners, gwv1.Listener{
			Name: gwv1.SectionName(ListenerName(in, p)), Protocol: gwv1.HTTPProtocolType, Port: gwv1.PortNumber(p),
		})
	}
	return g
}

// importRef is the backend every route and config policy targets: the imported pool, or
// in mode Regional the InferencePool itself.
func importRef(svc *v1alpha1.FleetInferenceService) (group, kind string) {
	if svc.Spec.Gateway.EffectiveMode() == v1alpha1.GatewayRegional {
		return GVKInferencePool.Group, GVKInferencePool.Kind
	}
	if svc.Spec.Gateway.Provider == v1alpha1.ProviderInferencePoolImport {
		return infv1alpha1.GroupVersion.Group, "InferencePoolImport"
	}
	return GVKGCPInferencePoolImp.Group, GVKGCPInferencePoolImp.Kind
}

// ModelNames are the model names clients may send: the base model, then objectives and
// LoRA adapters, without repeats.
func ModelNames(svc *v1alpha1.FleetInferenceService) []string {
	seen := map[string]bool{}
	var out []string
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	add(svc.Spec.Model.Name)
	for _, o := range svc.Spec.Objectives {
		add(o.Name)
	}
	for _, l := range svc.Spec.Model.LoraAdapters {
		add(l.ID)
	}
	return out
}

// ConfigCluster renders one service's objects beside its Gateway: its HTTPRoute and, for
// GKE, the HealthCheckPolicy and GCPBackendPolicy on the imported pool. In mode Regional
// the route goes to the InferencePool in the same member, whose policies are the endpoint
// picker's (see Member). gw is the shared Gateway the route attaches to. svc must be
// defaulted.
func ConfigCluster(svc *v1alpha1.FleetInferenceService, gw GatewayInput) []client.Object {
	objs := []client.Object{httpRoute(svc, gw)}
	switch {
	case svc.Spec.Gateway.EffectiveMode() == v1alpha1.GatewayRegional:
	case svc.Spec.Gateway.Provider == v1alpha1.ProviderGKE:
		objs = append(objs, healthCheckPolicy(svc), backendPolicy(svc))
	default:
		objs = append(objs, poolImport(svc))
	}
	return objs
}

// GatewayCluster names the cluster that holds svc's Gateway and routes, given the clusters
// its placement selected: "" (the config cluster) in mode MultiCluster, the one selected
// member in mode Regional. A regional service that selects other than one cluster is an
// error naming the field.
func GatewayCluster(svc *v1alpha1.FleetInferenceService, selected []string) (string, error) {
	if svc.Spec.Gateway.EffectiveMode() != v1alpha1.GatewayRegional {
		return "", nil
	}
	if err := v1alpha1.RegionalClusters(svc, selected); err != nil {
		return "", err
	}
	return selected[0], nil
}

func httpRoute(svc *v1alpha1.FleetInferenceService, gw GatewayInput) *gwv1.HTTPRoute {
	g := svc.Spec.Gateway
	group, kind := importRef(svc)
	ref := gwv1.BackendObjectReference{Group: ptr.To(gwv1.Group(group)), Kind: ptr.To(gwv1.Kind(kind)), Name: gwv1.ObjectName(svc.Name)}
	if g.EffectiveMode() == v1alpha1.GatewayRegional {
		// The pool's target port; Gateway API requires a backendRef port only for Services.
		ref.Port = ptr.To(gwv1.PortNumber(svc.Spec.Model.Server.Port))
	}
	backend := []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: ref}}}
	path := &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: ptr.To(g.PathPrefix)}
	var rules []gwv1.HTTPRouteRule
	if !g.BodyBasedRouting {
		rules = []gwv1.HTTPRouteRule{{Matches: []gwv1.HTTPRouteMatch{{Path: path}}, BackendRefs: backend}}
	} else {
		// One match per served model name: a request for any other model matches no rule.
		var matches []gwv1.HTTPRouteMatch
		for _, n := range ModelNames(svc) {
			matches = append(matches, gwv1.HTTPRouteMatch{Path: path, Headers: []gwv1.HTTPHeaderMatch{{
				Type: ptr.To(gwv1.HeaderMatchExact), Name: ModelNameHeader, Value: n,
			}}})
		}
		for len(matches) > 0 {
			n := min(len(matches), maxMatchesPerRule)
			rules = append(rules, gwv1.HTTPRouteRule{Matches: matches[:n], BackendRefs: backend})
			matches = matches[n:]
		}
	}
	return &gwv1.HTTPRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: gwv1.GroupVersion.String(), Kind: "HTTPRoute"},
		ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace, Labels: withConfigLabels(svc)},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{
				Kind: ptr.To(gwv1.Kind("Gateway")), Name: gwv1.ObjectName(g.Name),
				SectionName: ptr.To(gwv1.SectionName(ListenerName(gw, g.Port))),
			}}},
			Rules: rules,
		},
	}
}

func targetRef(svc *v1alpha1.FleetInferenceService) map[string]any {
	group, kind := importRef(svc)
	return map[string]any{"group": group, "kind": kind, "name": svc.Name}
}

// healthCheckPolicy is the HealthCheckPolicy on the imported pool: the load balancer checks
// every member's model servers over HTTP on the health path and port.
func healthCheckPolicy(svc *v1alpha1.FleetInferenceService) *unstructured.Unstructured {
	hc := svc.Spec.Gateway.HealthCheck
	return configPolicy(svc, GVKHealthCheckPolicy, map[string]any{
		"targetRef": targetRef(svc),
		"default": map[string]any{"config": map[string]any{
			"type": "HTTP",
			"httpHealthCheck": map[string]any{
				"portSpecification": "USE_FIXED_PORT",
				"port":              int64(hc.Port),
				"requestPath":       hc.Path,
			},
		}},
	})
}

// backendPolicy is the GCPBackendPolicy on the imported pool: the timeout, and balancing
// on the exported KV-cache metric or on in-flight requests, never both (GKE's balancing
// modes exclude each other).
func backendPolicy(svc *v1alpha1.FleetInferenceService) *unstructured.Unstructured {
	b := svc.Spec.Balancing
	def := map[string]any{
		"timeoutSec":      int64(svc.Spec.Gateway.TimeoutSeconds),
		"trafficDuration": map[v1alpha1.TrafficDuration]string{v1alpha1.TrafficDurationLong: "LONG", v1alpha1.TrafficDurationShort: "SHORT"}[b.TrafficDuration],
	}
	switch b.Mode {
	case v1alpha1.BalancingInFlight:
		def["balancingMode"] = "IN_FLIGHT"
		def["maxInFlightRequestsPerEndpoint"] = int64(*b.MaxInFlightRequestsPerEndpoint)
	default:
		cm := b.CustomMetric
		def["balancingMode"] = "CUSTOM_METRICS"
		def["customMetrics"] = []any{map[string]any{
			"name":                        customMetricPrefix + CustomMetricName(svc),
			BackendPolicyUtilizationField: int64(cm.MaxUtilization),
			"dryRun":                      cm.DryRun,
		}}
	}
	if l := svc.Spec.Gateway.Logging; l != nil && l.Enabled {
		def["logging"] = loggingPolicy(l)
	}
	return configPolicy(svc, GVKGCPBackendPolicy, map[string]any{"targetRef": targetRef(svc), "default": def})
}

// configPolicy is a GKE policy of kind gvk with the given spec, in the config cluster:
// named ConfigPolicyName(svc), in the service's namespace, with its config labels.
func configPolicy(svc *v1alpha1.FleetInferenceService, gvk schema.GroupVersionKind, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(gvk)
	u.SetName(ConfigPolicyName(svc))
	u.SetNamespace(svc.Namespace)
	u.SetLabels(withConfigLabels(svc))
	return u
}

// poolImport is the open-source InferencePoolImport the hub creates in the config
// cluster, named like the exported pools. Its content is status only: see ImportStatus.
func poolImport(svc *v1alpha1.FleetInferenceService) *infv1alpha1.InferencePoolImport {
	return &infv1alpha1.InferencePoolImport{
		TypeMeta:   metav1.TypeMeta{APIVersion: infv1alpha1.GroupVersion.String(), Kind: "InferencePoolImport"},
		ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace, Labels: withConfigLabels(svc)},
	}
}

// ImportStatus is the InferencePoolImport status the hub owns: its controller entry with
// the clusters exporting the pool right now, sorted.
func ImportStatus(exporting []string) infv1alpha1.ImportController {
	sorted := append([]string(nil), exporting...)
	sort.Strings(sorted)
	c := infv1alpha1.ImportController{Name: ImportController}
	for _, n := range sorted {
		c.ExportingClusters = append(c.ExportingClusters, infv1alpha1.ExportingCluster{Name: infv1alpha1.ClusterName(n)})
	}
	return c
}
