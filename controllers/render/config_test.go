package render

import (
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

func twoRegionGateway(svcs ...*v1alpha1.FleetInferenceService) GatewayInput {
	regions := map[string][]string{}
	for _, s := range svcs {
		regions[s.Name] = []string{"us-east4", "europe-west3", "us-east4"}
	}
	return NewGatewayInput(svcs, regions)
}

func spec(u *unstructured.Unstructured, path ...string) any {
	v, _, _ := unstructured.NestedFieldNoCopy(u.Object, append([]string{"spec"}, path...)...)
	return v
}

var configCases = []struct {
	name   string
	mutate func(*v1alpha1.FleetInferenceService)
}{
	{"custom-metrics", nil},
	{"in-flight", func(s *v1alpha1.FleetInferenceService) {
		s.Spec.Balancing = v1alpha1.BalancingSpec{Mode: v1alpha1.BalancingInFlight, MaxInFlightRequestsPerEndpoint: ptr.To[int32](1000)}
	}},
	{"body-based-routing-logging", func(s *v1alpha1.FleetInferenceService) {
		s.Spec.Gateway.BodyBasedRouting = true
		s.Spec.Gateway.Logging = &v1alpha1.LoggingSpec{Enabled: true, SampleRate: ptr.To(0.5)}
	}},
	{"inference-pool-import", func(s *v1alpha1.FleetInferenceService) {
		s.Spec.Gateway.Provider = v1alpha1.ProviderInferencePoolImport
		s.Spec.Gateway.ClassName = "istio"
		s.Spec.Balancing = v1alpha1.BalancingSpec{}
	}},
}

func TestConfigClusterGolden(t *testing.T) {
	for _, tc := range configCases {
		t.Run(tc.name, func(t *testing.T) {
			svc := loadSample(t, "fleet_v1alpha1_two-region-h100.yaml")
			if tc.mutate != nil {
				tc.mutate(svc)
				v1alpha1.SetDefaults(svc)
			}
			gw := twoRegionGateway(svc)
			objs := append([]client.Object{Gateway(gw)}, ConfigCluster(svc, gw)...)
			golden(t, filepath.Join("config", tc.name+".yaml"), toYAML(t, objs))
		})
	}
}

// TestGatewayMatchesSeed004 checks mcig.yaml's Gateway: the cross-regional class, one
// ephemeral address per region, one HTTP listener on 80.
func TestGatewayMatchesSeed004(t *testing.T) {
	svc := loadSample(t, "fleet_v1alpha1_two-region-h100.yaml")
	g := Gateway(twoRegionGateway(svc))
	if g.Name != "cross-region-gateway" || g.Spec.GatewayClassName != "gke-l7-cross-regional-internal-managed-mc" {
		t.Errorf("gateway %s class %s", g.Name, g.Spec.GatewayClassName)
	}
	want := []gwv1.GatewaySpecAddress{
		{Type: ptr.To(gwv1.AddressType("networking.gke.io/ephemeral-ipv4-address/europe-west3")), Value: "europe-west3"},
		{Type: ptr.To(gwv1.AddressType("networking.gke.io/ephemeral-ipv4-address/us-east4")), Value: "us-east4"},
	}
	if len(g.Spec.Addresses) != 2 || *g.Spec.Addresses[0].Type != *want[0].Type || g.Spec.Addresses[0].Value != want[0].Value ||
		*g.Spec.Addresses[1].Type != *want[1].Type || g.Spec.Addresses[1].Value != want[1].Value {
		t.Errorf("addresses %+v", g.Spec.Addresses)
	}
	if len(g.Spec.Listeners) != 1 || g.Spec.Listeners[0].Name != "http" || g.Spec.Listeners[0].Port != 80 || g.Spec.Listeners[0].Protocol != gwv1.HTTPProtocolType {
		t.Errorf("listeners %+v", g.Spec.Listeners)
	}
}

func TestSharedGatewayUnionsServices(t *testing.T) {
	a := loadSample(t, "fleet_v1alpha1_two-region-h100.yaml")
	b := a.DeepCopy()
	b.Name, b.Spec.Gateway.Port = "other", 8080
	in := NewGatewayInput([]*v1alpha1.FleetInferenceService{a, b}, map[string][]string{a.Name: {"europe-west3"}, b.Name: {"us-east4", "asia-east1"}})
	g := Gateway(in)
	if len(g.Spec.Addresses) != 3 || g.Spec.Addresses[0].Value != "asia-east1" {
		t.Errorf("addresses not the sorted union: %+v", g.Spec.Addresses)
	}
	if len(g.Spec.Listeners) != 2 || g.Spec.Listeners[0].Name != "http-80" || g.Spec.Listeners[1].Name != "http-8080" {
		t.Errorf("listeners %+v", g.Spec.Listeners)
	}
	route := ConfigCluster(b, in)[0].(*gwv1.HTTPRoute)
	if *route.Spec.ParentRefs[0].SectionName != "http-8080" {
		t.Errorf("route attaches to %v", *route.Spec.ParentRefs[0].SectionName)
	}
}

func TestRouteAndPoliciesMatchSeed004(t *testing.T) {
	svc := loadSample(t, "fleet_v1alpha1_two-region-h100.yaml")
	objs := ConfigCluster(svc, twoRegionGateway(svc))
	route := objs[0].(*gwv1.HTTPRoute)
	ref := route.Spec.Rules[0].BackendRefs[0]
	if *ref.Group != "networking.gke.io" || *ref.Kind != "GCPInferencePoolImport" || ref.Name != gwv1.ObjectName(svc.Name) {
		t.Errorf("backendRef %+v", ref)
	}
	if route.Spec.ParentRefs[0].Name != "cross-region-gateway" || *route.Spec.ParentRefs[0].Kind != "Gateway" {
		t.Errorf("parentRef %+v", route.Spec.ParentRefs[0])
	}
	if m := route.Spec.Rules[0].Matches[0]; *m.Path.Type != gwv1.PathMatchPathPrefix || *m.Path.Value != "/v1" {
		t.Errorf("match %+v", m)
	}
	hc := objs[1].(*unstructured.Unstructured)
	if hc.GetKind() != "HealthCheckPolicy" || spec(hc, "targetRef", "kind") != "GCPInferencePoolImport" ||
		spec(hc, "default", "config", "type") != "HTTP" || spec(hc, "default", "config", "httpHealthCheck", "requestPath") != "/health" ||
		spec(hc, "default", "config", "httpHealthCheck", "port") != int64(8000) {
		t.Errorf("health check %v", hc.Object["spec"])
	}
	bp := objs[2].(*unstructured.Unstructured)
	metrics := spec(bp, "default", "customMetrics").([]any)
	m := metrics[0].(map[string]any)
	if bp.GetKind() != "GCPBackendPolicy" || spec(bp, "default", "balancingMode") != "CUSTOM_METRICS" || spec(bp, "default", "trafficDuration") != "LONG" ||
		spec(bp, "default", "timeoutSec") != int64(100) || m["name"] != "gke.named_metrics.kv-cache" || m["maxUtilization"] != int64(60) || m["dryRun"] != false {
		t.Errorf("backend policy %v", bp.Object["spec"])
	}
	if _, ok := spec(bp, "default").(map[string]any)["maxInFlightRequestsPerEndpoint"]; ok {
		t.Error("CUSTOM_METRICS policy carries maxInFlightRequestsPerEndpoint")
	}
}

func TestInFlightPolicyIsExclusive(t *testing.T) {
	svc := loadSample(t, "fleet_v1alpha1_two-region-h100.yaml")
	svc.Spec.Balancing = v1alpha1.BalancingSpec{Mode: v1alpha1.BalancingInFlight, MaxInFlightRequestsPerEndpoint: ptr.To[int32](1000)}
	v1alpha1.SetDefaults(svc)
	bp := ConfigCluster(svc, twoRegionGateway(svc))[2].(*unstructured.Unstructured)
	def := spec(bp, "default").(map[string]any)
	if def["balancingMode"] != "IN_FLIGHT" || def["maxInFlightRequestsPerEndpoint"] != int64(1000) {
		t.Errorf("in-flight policy %v", def)
	}
	if _, ok := def["customMetrics"]; ok {
		t.Error("IN_FLIGHT policy carries customMetrics")
	}
}

func TestBodyBasedRouting(t *testing.T) {
	svc := loadSample(t, "fleet_v1alpha1_two-region-h100.yaml")
	svc.Spec.Gateway.BodyBasedRouting = true
	svc.Spec.Gateway.Logging = &v1alpha1.LoggingSpec{Enabled: true, SampleRate: ptr.To(0.25)}
	route := ConfigCluster(svc, twoRegionGateway(svc))[0].(*gwv1.HTTPRoute)
	var got []string
	for _, m := range route.Spec.Rules[0].Matches {
		if m.Headers[0].Name != ModelNameHeader || *m.Headers[0].Type != gwv1.HeaderMatchExact || *m.Path.Value != "/v1" {
			t.Errorf("match %+v", m)
		}
		got = append(got, m.Headers[0].Value)
	}
	want := []string{"meta-llama/Llama-3.1-8B-Instruct", "food-review", "llama3-base-model", "food-review-1"}
	if len(got) != len(want) {
		t.Fatalf("models %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("models %v, want %v", got, want)
		}
	}
	bp := ConfigCluster(svc, twoRegionGateway(svc))[2].(*unstructured.Unstructured)
	if spec(bp, "default", "logging", "sampleRate") != int64(250000) {
		t.Errorf("sampleRate must be in millionths: %v", spec(bp, "default", "logging"))
	}
}

func TestInferencePoolImportProvider(t *testing.T) {
	svc := loadSample(t, "fleet_v1alpha1_two-region-h100.yaml")
	svc.Spec.Gateway.Provider = v1alpha1.ProviderInferencePoolImport
	svc.Spec.Gateway.ClassName = "istio"
	v1alpha1.SetDefaults(svc)
	gw := twoRegionGateway(svc)
	objs := ConfigCluster(svc, gw)
	route := objs[0].(*gwv1.HTTPRoute)
	ref := route.Spec.Rules[0].BackendRefs[0]
	if *ref.Group != "inference.networking.x-k8s.io" || *ref.Kind != "InferencePoolImport" {
		t.Errorf("backendRef %+v", ref)
	}
	if len(objs) != 2 || objs[1].GetObjectKind().GroupVersionKind() != GVKInferencePoolImport || objs[1].GetName() != svc.Name {
		t.Errorf("want the route and an InferencePoolImport named like the pool, got %d objects", len(objs))
	}
	if g := Gateway(gw); len(g.Spec.Addresses) != 0 || g.Spec.GatewayClassName != "istio" {
		t.Errorf("open-source gateway %+v", g.Spec)
	}
	st := ImportStatus([]string{"b", "a"})
	if st.Name != ImportController || len(st.ExportingClusters) != 2 || st.ExportingClusters[0].Name != "a" {
		t.Errorf("import status %+v", st)
	}
}
