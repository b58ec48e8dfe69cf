package render

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

// eppChartRender is the published inferencepool chart v1.5.0 rendered by helm for release
// llama in namespace serving with provider.name=gke and
// inferenceExtension.monitoring.prometheus.enabled=true.
const eppChartRender = "testdata/charts/inferencepool-v1.5.0-gke-prometheus.yaml"

// eppChartMonitoringObjects are the objects that chart renders only with monitoring (the
// difference from its render without prometheus.enabled).
var eppChartMonitoringObjects = []string{
	"ServiceAccount serving/llama-metrics-reader-sa",
	"Secret serving/llama-metrics-reader-secret",
	"ClusterRole llama-serving-epp",
	"ClusterRoleBinding llama-serving-epp",
	"ClusterRole serving-llama-metrics-reader",
	"ClusterRoleBinding serving-llama-metrics-reader-role-binding",
	"Role serving/llama-metrics-reader-secret-read",
	"RoleBinding serving/gmp-system:collector:serving-llama-metrics-reader-secret-read",
	"PodMonitoring serving/llama",
}

// eppChartKey names an object as "Kind namespace/name", or "Kind name" when cluster-scoped.
func eppChartKey(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return u.GetKind() + " " + u.GetName()
	}
	return u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
}

// eppChartObjects parses the chart's render, skipping empty documents, as JSON values
// (numbers as float64) so that they compare with eppOurObject's.
func eppChartObjects(t *testing.T) map[string]*unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(eppChartRender)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*unstructured.Unstructured{}
	for _, doc := range strings.Split(string(raw), "\n---") {
		// Keep each document's last line break, which a block scalar ending it holds.
		j, err := yaml.YAMLToJSON([]byte(doc + "\n"))
		if err != nil {
			t.Fatalf("%s: %v\n%s", eppChartRender, err, doc)
		}
		var m map[string]any
		if err := json.Unmarshal(j, &m); err != nil {
			t.Fatal(err)
		}
		if len(m) == 0 {
			continue // a document holding only comments
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "Role" && u.GetNamespace() == "" {
			// _gke.yaml's Role has no namespace: Helm installs it into the release
			// namespace, where we render it.
			u.SetNamespace("serving")
		}
		key := eppChartKey(u)
		if _, dup := out[key]; dup {
			t.Fatalf("%s renders %s twice", eppChartRender, key)
		}
		out[key] = u
	}
	return out
}

// eppOurObject is a rendered object as the API server would receive it, less what the
// hub adds to every object on purpose: its ownership labels (fleet.inferfleet.dev/*,
// app.kubernetes.io/managed-by) and its own annotations (the applied hash). The null
// creationTimestamps and empty status that typed objects encode are dropped too.
func eppOurObject(t *testing.T, o client.Object) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	if u, ok := o.(*unstructured.Unstructured); ok {
		m = u.DeepCopy().Object
	} else {
		var err error
		if m, err = runtime.DefaultUnstructuredConverter.ToUnstructured(o); err != nil {
			t.Fatal(err)
		}
	}
	j, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	m = nil
	if err := json.Unmarshal(j, &m); err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	unstructured.RemoveNestedField(m, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(m, "spec", "template", "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(m, "status")

	labels := u.GetLabels()
	for k := range labels {
		if strings.HasPrefix(k, "fleet.inferfleet.dev/") || k == LabelManagedBy {
			delete(labels, k)
		}
	}
	if len(labels) == 0 {
		unstructured.RemoveNestedField(m, "metadata", "labels")
	} else {
		u.SetLabels(labels)
	}
	ann := u.GetAnnotations()
	for k := range ann {
		if strings.HasPrefix(k, "fleet.inferfleet.dev/") {
			delete(ann, k)
		}
	}
	if len(ann) == 0 {
		unstructured.RemoveNestedField(m, "metadata", "annotations")
	} else {
		u.SetAnnotations(ann)
	}
	return u
}

// TestEndpointPickerMatchesChart renders the chart's configuration (llama in serving,
// provider GKE, monitoring.gke) and compares every object with the chart's own render,
// field for field, once the hub's ownership labels and annotations are set aside. The
// only other difference allowed is the one the file's header documents for the Service
// (targetPort = port). The InferencePool is member.go's and is not rendered here.
func TestEndpointPickerMatchesChart(t *testing.T) {
	chart := eppChartObjects(t)
	for _, key := range eppChartMonitoringObjects {
		if chart[key] == nil {
			t.Fatalf("%s lacks %s", eppChartRender, key)
		}
	}

	svc := eppTestService(func(s *v1alpha1.FleetInferenceService) {
		s.Spec.EndpointPicker.Monitoring = &v1alpha1.EndpointPickerMonitoring{GKE: true}
	})
	if svc.Name != "llama" || svc.Namespace != "serving" || svc.Spec.Gateway.Provider != v1alpha1.ProviderGKE ||
		svc.Spec.Model.Server.Port != 8000 || svc.Spec.EndpointPicker.Replicas != 1 ||
		svc.Spec.EndpointPicker.Image != "registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0" {
		t.Fatalf("the test service no longer matches the chart's values: %s/%s %+v %+v", svc.Namespace, svc.Name, svc.Spec.Gateway, svc.Spec.EndpointPicker)
	}

	ours := map[string]*unstructured.Unstructured{}
	for _, o := range endpointPicker(svc) {
		u := eppOurObject(t, o)
		key := eppChartKey(u)
		if _, dup := ours[key]; dup {
			t.Fatalf("endpointPicker renders %s twice", key)
		}
		ours[key] = u
	}

	var compared []string
	for key, want := range chart {
		if want.GroupVersionKind() == GVKInferencePool {
			continue
		}
		got, ok := ours[key]
		if !ok {
			t.Errorf("the chart renders %s, endpointPicker does not", key)
			continue
		}
		delete(ours, key)
		if want.GetKind() == "Service" {
			// Difference on purpose: we send targetPort = port, the API server's default.
			ports, _, _ := unstructured.NestedSlice(got.Object, "spec", "ports")
			for _, p := range ports {
				pm := p.(map[string]any)
				if pm["targetPort"] != pm["port"] {
					t.Errorf("%s port %v: targetPort %v, want the port", key, pm["name"], pm["targetPort"])
				}
				delete(pm, "targetPort")
			}
			_ = unstructured.SetNestedSlice(got.Object, ports, "spec", "ports")
		}
		if diff := cmp.Diff(want.Object, got.Object); diff != "" {
			t.Errorf("%s differs from the chart's (-chart +ours):\n%s", key, diff)
		}
		compared = append(compared, key)
	}
	for key := range ours {
		t.Errorf("endpointPicker renders %s, which the chart does not", key)
	}
	sort.Strings(compared)
	t.Logf("equal to the chart: %s", strings.Join(compared, ", "))
}

// TestEndpointPickerChartCompareFails makes sure the comparison above can fail: a field
// changed in one of our objects must show up as a difference.
func TestEndpointPickerChartCompareFails(t *testing.T) {
	chart := eppChartObjects(t)
	svc := eppTestService(func(s *v1alpha1.FleetInferenceService) {
		s.Spec.EndpointPicker.Monitoring = &v1alpha1.EndpointPickerMonitoring{GKE: true}
	})
	pm := eppOurObject(t, eppPodMonitoring(svc, EndpointPickerName(svc)))
	if diff := cmp.Diff(chart["PodMonitoring serving/llama"].Object, pm.Object); diff != "" {
		t.Fatalf("PodMonitoring differs before the change:\n%s", diff)
	}
	eps, _, _ := unstructured.NestedSlice(pm.Object, "spec", "endpoints")
	eps[0].(map[string]any)["interval"] = "5s"
	_ = unstructured.SetNestedSlice(pm.Object, eps, "spec", "endpoints")
	if diff := cmp.Diff(chart["PodMonitoring serving/llama"].Object, pm.Object); !strings.Contains(diff, `"5s"`) {
		t.Fatalf("a changed interval does not show in the diff: %q", diff)
	}
}
