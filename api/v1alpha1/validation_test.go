package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	testenv "github.com/inferfleet/inferfleet/e2e/framework"
)

// base is a valid FleetInferenceService; every invalid case below breaks exactly one rule.
const base = `
apiVersion: fleet.inferfleet.dev/v1alpha1
kind: FleetInferenceService
metadata: {name: svc, namespace: default}
spec:
  model:
    name: meta-llama/Llama-3.1-8B-Instruct
    accelerator: {type: nvidia-l4, count: 1}
    loraAdapters: [{id: food-review-1, source: Kawon/llama3.1-food-finetune_v14_r8}]
  objectives: [{name: food-review, priority: 10}, {name: base, priority: 20}]
  replicas: 4
  placement:
    clusters: [{name: gke-west, weight: 1, minReplicas: 0, maxReplicas: 4}, {name: gke-east}]
`

type mutation func(obj map[string]any)

func set(value any, path ...string) mutation {
	return func(obj map[string]any) {
		if err := unstructured.SetNestedField(obj, runtime.DeepCopyJSONValue(value), path...); err != nil {
			panic(err)
		}
	}
}

func del(path ...string) mutation {
	return func(obj map[string]any) { unstructured.RemoveNestedField(obj, path...) }
}

func all(ms ...mutation) mutation {
	return func(obj map[string]any) {
		for _, m := range ms {
			m(obj)
		}
	}
}

// invalidCases are rejected by the API server (CRD schema and CEL) and by Validate, each
// with a message naming the offending field.
var invalidCases = []struct {
	name   string
	mutate mutation
	field  string // must appear in the API server's message
}{
	{"both balancing modes", all(set("CustomMetrics", "spec", "balancing", "mode"), set(int64(100), "spec", "balancing", "maxInFlightRequestsPerEndpoint")), "maxInFlightRequestsPerEndpoint"},
	{"in-flight with custom metric", all(set("InFlight", "spec", "balancing", "mode"), set(int64(10), "spec", "balancing", "maxInFlightRequestsPerEndpoint"), set(map[string]any{"name": "kv-cache"}, "spec", "balancing", "customMetric")), "customMetric"},
	{"in-flight without capacity", set("InFlight", "spec", "balancing", "mode"), "maxInFlightRequestsPerEndpoint"},
	{"maxUtilization above 100", set(int64(101), "spec", "balancing", "customMetric", "maxUtilization"), "maxUtilization"},
	{"maxUtilization negative", set(int64(-5), "spec", "balancing", "customMetric", "maxUtilization"), "maxUtilization"},
	{"unknown balancing mode", set("RoundRobin", "spec", "balancing", "mode"), "mode"},
	{"TPU without topology", set(map[string]any{"type": "tpu-v5-lite-podslice", "count": int64(4)}, "spec", "model", "accelerator"), "topology"},
	{"GPU with topology", set("2x2", "spec", "model", "accelerator", "topology"), "topology"},
	{"malformed TPU topology", set(map[string]any{"type": "tpu-v6e-slice", "count": int64(4), "topology": "2by2"}, "spec", "model", "accelerator"), "topology"},
	{"unknown accelerator vendor", set("amd-mi300x", "spec", "model", "accelerator", "type"), "accelerator.type"},
	{"accelerator count zero-or-less", set(int64(-1), "spec", "model", "accelerator", "count"), "accelerator.count"},
	{"duplicate objective names", set([]any{map[string]any{"name": "a"}, map[string]any{"name": "a"}}, "spec", "objectives"), "objectives"},
	{"objective name not DNS-1123", set([]any{map[string]any{"name": "Food_Review"}}, "spec", "objectives"), "objectives[0].name"},
	{"duplicate LoRA ids", set([]any{map[string]any{"id": "x", "source": "a"}, map[string]any{"id": "x", "source": "b"}}, "spec", "model", "loraAdapters"), "loraAdapters"},
	{"LoRA without source", set([]any{map[string]any{"id": "x"}}, "spec", "model", "loraAdapters"), "source"},
	{"duplicate cluster names", set([]any{map[string]any{"name": "a"}, map[string]any{"name": "a"}}, "spec", "placement", "clusters"), "clusters"},
	{"cluster name not DNS-1123", set([]any{map[string]any{"name": "GKE_West"}}, "spec", "placement", "clusters"), "clusters[0].name"},
	{"clusters and clusterSelector", set(map[string]any{"matchLabels": map[string]any{"tier": "gpu"}}, "spec", "placement", "clusterSelector"), "placement"},
	{"neither clusters nor clusterSelector", del("spec", "placement", "clusters"), "placement"},
	{"negative replicas", set(int64(-1), "spec", "replicas"), "replicas"},
	{"replicas above 10000", set(int64(10001), "spec", "replicas"), "replicas"},
	{"endpoint picker replicas above 10", set(int64(11), "spec", "endpointPicker", "replicas"), "endpointPicker.replicas"},
	{"unknown deletion policy", set("Keep", "spec", "deletionPolicy"), "deletionPolicy"},
	{"token Secret without a name", set("", "spec", "model", "server", "huggingFaceTokenSecretRef", "name"), "huggingFaceTokenSecretRef.name"},
	{"minReplicas above maxReplicas", set([]any{map[string]any{"name": "a", "minReplicas": int64(5), "maxReplicas": int64(2)}}, "spec", "placement", "clusters"), "minReplicas"},
	{"negative weight", set([]any{map[string]any{"name": "a", "weight": int64(-1)}}, "spec", "placement", "clusters"), "weight"},
	{"args set --model", set([]any{"--model=other"}, "spec", "model", "server", "args"), "args"},
	{"override args set --port", set([]any{map[string]any{"name": "a", "overrides": map[string]any{"args": []any{"--port", "9000"}}}}, "spec", "placement", "clusters"), "args"},
	{"port out of range", set(int64(70000), "spec", "model", "server", "port"), "port"},
	{"unknown gateway provider", set("AWS", "spec", "gateway", "provider"), "provider"},
	{"InferencePoolImport without className", set("InferencePoolImport", "spec", "gateway", "provider"), "className"},
	{"logging with InferencePoolImport", all(set("InferencePoolImport", "spec", "gateway", "provider"), set("istio", "spec", "gateway", "className"), set(map[string]any{"enabled": true}, "spec", "gateway", "logging")), "logging"},
	{"pathPrefix without slash", set("v1", "spec", "gateway", "pathPrefix"), "pathPrefix"},
	{"gateway name not DNS-1123", set("Cross_Region", "spec", "gateway", "name"), "gateway.name"},
	{"unhealthyAfter zero", set("0s", "spec", "placement", "failover", "unhealthyAfter"), "unhealthyAfter"},
	{"unknown spillover policy", set("Borrow", "spec", "placement", "spillover", "policy"), "spillover.policy"},
	{"spillover after two days", set("48h", "spec", "placement", "spillover", "after"), "spillover.after"},
	{"spillover scaleUpTimeout negative", set("-1m", "spec", "placement", "spillover", "scaleUpTimeout"), "spillover.scaleUpTimeout"},
	{"computeClass without accelerator", all(del("spec", "model", "accelerator"), set("vllm-fallback", "spec", "model", "computeClass")), "computeClass"},
	{"fallbackAccelerators without computeClass", set([]any{map[string]any{"type": "nvidia-l4"}}, "spec", "model", "fallbackAccelerators"), "fallbackAccelerators"},
	// Routing contradictions: a regional class routes to the pool in its own cluster.
	{"regional class over two clusters", set("gke-l7-regional-external-managed", "spec", "gateway", "className"), "placement.clusters"},
	{"mode Regional over two clusters", set("Regional", "spec", "gateway", "mode"), "placement.clusters"},
	{"mode Regional with a multi-cluster class", all(set("Regional", "spec", "gateway", "mode"), set("gke-l7-cross-regional-internal-managed-mc", "spec", "gateway", "className"), set([]any{map[string]any{"name": "gke-west"}}, "spec", "placement", "clusters")), "gateway.className"},
	{"import route with a regional class", all(set("MultiCluster", "spec", "gateway", "mode"), set("gke-l7-rilb", "spec", "gateway", "className")), "gateway.className"},
	{"unknown gateway mode", set("Global", "spec", "gateway", "mode"), "gateway.mode"},
	{"compute class nobody uses", set([]any{map[string]any{"name": "spare", "priorities": []any{map[string]any{"nodepools": []any{"a"}}}}}, "spec", "computeClasses"), "computeClasses"},
	{"compute class priority with gpu and tpu", all(set("l4-class", "spec", "model", "computeClass"), set([]any{map[string]any{"name": "l4-class", "priorities": []any{map[string]any{
		"gpu": map[string]any{"type": "nvidia-l4", "count": int64(1)}, "tpu": map[string]any{"type": "tpu-v6e-slice", "count": int64(1), "topology": "1x1"}}}}}, "spec", "computeClasses")), "priorities[0]"},
	{"compute class without priorities", all(set("l4-class", "spec", "model", "computeClass"), set([]any{map[string]any{"name": "l4-class", "priorities": []any{}}}, "spec", "computeClasses")), "priorities"},
	{"GKE monitoring on the open-source provider", all(set("InferencePoolImport", "spec", "gateway", "provider"), set("istio", "spec", "gateway", "className"), set(map[string]any{"gke": true}, "spec", "endpointPicker", "monitoring")), "endpointPicker.monitoring.gke"},
	{"name not a DNS-1035 label", set("9svc", "metadata", "name"), "metadata.name"},
	{"name too long", set(strings.Repeat("a", 59), "metadata", "name"), "metadata.name"},
	{"model name missing", del("spec", "model", "name"), "model.name"},
	{"autoscaling minReplicas above maxReplicas", set(map[string]any{"minReplicas": int64(5), "maxReplicas": int64(2),
		"metrics": []any{map[string]any{"type": "WaitingRequests", "averageValue": "5"}}}, "spec", "autoscaling"), "autoscaling.minReplicas"},
	{"autoscaling minReplicas negative", set(map[string]any{"minReplicas": int64(-1), "maxReplicas": int64(8),
		"metrics": []any{map[string]any{"type": "WaitingRequests", "averageValue": "5"}}}, "spec", "autoscaling"), "minReplicas"},
	{"autoscaling idle window without scale to zero", set(map[string]any{"idleWindowSeconds": int64(60), "maxReplicas": int64(8),
		"metrics": []any{map[string]any{"type": "WaitingRequests", "averageValue": "5"}}}, "spec", "autoscaling"), "idleWindowSeconds"},
	{"replicas outside the autoscaling bounds", set(map[string]any{"maxReplicas": int64(2),
		"metrics": []any{map[string]any{"type": "WaitingRequests", "averageValue": "5"}}}, "spec", "autoscaling"), "replicas"},
	{"autoscaling without metrics", set(map[string]any{"maxReplicas": int64(8), "metrics": []any{}}, "spec", "autoscaling"), "metrics"},
	{"KV-cache metric with averageValue", set(map[string]any{"maxReplicas": int64(8),
		"metrics": []any{map[string]any{"type": "KVCacheUtilization", "averageValue": "5"}}}, "spec", "autoscaling"), "averageUtilization"},
	{"request metric with averageUtilization", set(map[string]any{"maxReplicas": int64(8),
		"metrics": []any{map[string]any{"type": "RunningRequests", "averageUtilization": int64(50)}}}, "spec", "autoscaling"), "averageValue"},
	{"request metric target zero", set(map[string]any{"maxReplicas": int64(8),
		"metrics": []any{map[string]any{"type": "WaitingRequests", "averageValue": "0"}}}, "spec", "autoscaling"), "averageValue"},
	{"unknown autoscaling metric", set(map[string]any{"maxReplicas": int64(8),
		"metrics": []any{map[string]any{"type": "GPUUtilization", "averageUtilization": int64(50)}}}, "spec", "autoscaling"), "metrics[0].type"},
	{"too many names for body-based routing", all(set(true, "spec", "gateway", "bodyBasedRouting"), func(obj map[string]any) {
		var objs []any
		for i := range 64 {
			objs = append(objs, map[string]any{"name": fmt.Sprintf("o%d", i)})
		}
		var loras []any
		for i := range 64 {
			loras = append(loras, map[string]any{"id": fmt.Sprintf("l%d", i), "source": "x"})
		}
		_ = unstructured.SetNestedSlice(obj, objs, "spec", "objectives")
		_ = unstructured.SetNestedSlice(obj, loras, "spec", "model", "loraAdapters")
	}), "bodyBasedRouting"},
}

func baseObject(t *testing.T) map[string]any {
	t.Helper()
	obj := map[string]any{}
	if err := yaml.Unmarshal([]byte(base), &obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// TestValidateRejectsInvalid runs the same cases through the Go validation, which guards
// objects that never passed an API server (fleetctl render).
func TestValidateRejectsInvalid(t *testing.T) {
	svc := decode(t, baseObject(t))
	if err := svc.Validate(); err != nil {
		t.Fatalf("base object rejected: %v", err)
	}
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			obj := baseObject(t)
			tc.mutate(obj)
			svc := decode(t, obj)
			err := svc.Validate()
			if err == nil {
				t.Fatalf("Validate accepted an invalid object")
			}
			if !strings.Contains(err.Error(), lastSegment(tc.field)) {
				t.Errorf("error %q does not name %q", err, tc.field)
			}
		})
	}
}

func lastSegment(f string) string { return f[strings.LastIndex(f, ".")+1:] }

func decode(t *testing.T, obj map[string]any) *v1alpha1.FleetInferenceService {
	t.Helper()
	svc := &v1alpha1.FleetInferenceService{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, svc); err != nil {
		t.Fatal(err)
	}
	v1alpha1.SetDefaults(svc)
	return svc
}

func TestAPIServerValidation(t *testing.T) {
	env := testenv.Start(t, testenv.CRDs())
	ctx := context.Background()

	t.Run("base accepted", func(t *testing.T) {
		u := &unstructured.Unstructured{Object: baseObject(t)}
		u.SetName("base-ok")
		if err := env.Client.Create(ctx, u); err != nil {
			t.Fatalf("valid object rejected: %v", err)
		}
	})
	for i, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			u := &unstructured.Unstructured{Object: baseObject(t)}
			u.SetName("invalid-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26))
			tc.mutate(u.Object)
			err := env.Client.Create(ctx, u)
			if err == nil {
				t.Fatalf("API server accepted an invalid object")
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("message does not name %q: %v", tc.field, err)
			}
		})
	}
}

// TestSamples applies every sample (each must be accepted) and checks that the API server's
// defaults agree with SetDefaults, which offline rendering relies on.
func TestSamples(t *testing.T) {
	env := testenv.Start(t, testenv.CRDs())
	ctx := context.Background()
	files, err := filepath.Glob(filepath.Join(testenv.Root(), "config", "samples", "*.yaml"))
	if err != nil || len(files) < 5 {
		t.Fatalf("want at least 5 samples (one per tutorial), found %d (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			in := &v1alpha1.FleetInferenceService{}
			if err := yaml.UnmarshalStrict(raw, in); err != nil {
				t.Fatalf("sample does not decode strictly: %v", err)
			}
			if err := env.Client.Create(ctx, in.DeepCopy()); err != nil {
				t.Fatalf("sample rejected: %v", err)
			}
			got := &v1alpha1.FleetInferenceService{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(in), got); err != nil {
				t.Fatal(err)
			}
			want := in.DeepCopy()
			v1alpha1.SetDefaults(want)
			if err := want.Validate(); err != nil {
				t.Errorf("Validate rejects a sample the API server accepts: %v", err)
			}
			v1alpha1.SetDefaults(got)
			if diff := cmp.Diff(want.Spec, got.Spec); diff != "" {
				t.Errorf("API server defaults differ from SetDefaults (-go +server):\n%s", diff)
			}
		})
	}
}

// TestMinimalDefaults checks every CRD default on an object that sets almost nothing.
func TestMinimalDefaults(t *testing.T) {
	env := testenv.Start(t, testenv.CRDs())
	ctx := context.Background()
	in := &v1alpha1.FleetInferenceService{
		ObjectMeta: metav1.ObjectMeta{Name: "minimal", Namespace: "default"},
		Spec: v1alpha1.FleetInferenceServiceSpec{
			Model:     v1alpha1.ModelSpec{Name: "m", Accelerator: &v1alpha1.AcceleratorSpec{Type: "nvidia-l4"}},
			Replicas:  2,
			Placement: v1alpha1.PlacementSpec{Clusters: []v1alpha1.ClusterPlacement{{Name: "a"}}},
		},
	}
	if err := env.Client.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	got := &v1alpha1.FleetInferenceService{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(in), got); err != nil {
		t.Fatal(err)
	}
	s := got.Spec
	checks := []struct {
		name      string
		got, want any
	}{
		{"image", s.Model.Server.Image, v1alpha1.DefaultImage},
		{"port", s.Model.Server.Port, v1alpha1.DefaultPort},
		{"accelerator.count", s.Model.Accelerator.Count, int32(1)},
		{"weight", *s.Placement.Clusters[0].Weight, int32(1)},
		{"failover.policy", s.Placement.Failover.Policy, v1alpha1.FailoverRedistribute},
		{"failover.unhealthyAfter", s.Placement.Failover.UnhealthyAfter.Duration, v1alpha1.DefaultUnhealthyAfter},
		{"failover.failbackAfter", s.Placement.Failover.FailbackAfter.Duration, v1alpha1.DefaultFailbackAfter},
		{"spillover.policy", s.Placement.Spillover.Policy, v1alpha1.SpilloverSpill},
		{"spillover.after", s.Placement.Spillover.After.Duration, v1alpha1.DefaultSpillAfter},
		{"spillover.scaleUpTimeout", s.Placement.Spillover.ScaleUpTimeout.Duration, v1alpha1.DefaultScaleUpTimeout},
		{"gateway.provider", s.Gateway.Provider, v1alpha1.ProviderGKE},
		{"gateway.name", s.Gateway.Name, v1alpha1.DefaultGatewayName},
		{"gateway.port", s.Gateway.Port, v1alpha1.DefaultGatewayPort},
		{"gateway.pathPrefix", s.Gateway.PathPrefix, v1alpha1.DefaultPathPrefix},
		{"gateway.healthCheck.path", s.Gateway.HealthCheck.Path, v1alpha1.DefaultHealthPath},
		{"gateway.timeoutSeconds", s.Gateway.TimeoutSeconds, v1alpha1.DefaultTimeoutSeconds},
		{"balancing.mode", s.Balancing.Mode, v1alpha1.BalancingCustomMetrics},
		{"balancing.trafficDuration", s.Balancing.TrafficDuration, v1alpha1.TrafficDurationLong},
		{"endpointPicker.image", s.EndpointPicker.Image, v1alpha1.DefaultEPPImage},
		{"endpointPicker.replicas", s.EndpointPicker.Replicas, int32(1)},
		{"endpointPicker.failureMode", s.EndpointPicker.FailureMode, v1alpha1.FailOpen},
		{"deletionPolicy", s.DeletionPolicy, v1alpha1.DeletionDelete},
	}
	for _, c := range checks {
		if !cmp.Equal(c.got, c.want) {
			t.Errorf("%s defaulted to %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestAutoscalingOwnsReplicas: with autoscaling set, replicas changes only together with
// the bounds (kubectl scale, an HPA or KEDA would fight the hub's autoscaler); without
// it, the scale subresource sets replicas.
func TestAutoscalingOwnsReplicas(t *testing.T) {
	env := testenv.Start(t, testenv.CRDs())
	ctx := context.Background()
	svc := decode(t, baseObject(t))
	svc.Name = "autoscaled"
	svc.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MaxReplicas: 8, Metrics: []v1alpha1.AutoscalingMetric{
		{Type: v1alpha1.MetricWaitingRequests, AverageValue: ptr.To(resource.MustParse("5"))}}}
	svc.Spec.Autoscaling.MinReplicas = nil
	if err := env.Client.Create(ctx, svc); err != nil {
		t.Fatalf("autoscaled service rejected: %v", err)
	}
	if m := svc.Spec.Autoscaling.MinReplicas; m == nil || *m != 1 {
		t.Fatalf("autoscaling.minReplicas defaulted to %v, want 1", m)
	}
	scale := func(n int32) error {
		return env.Client.SubResource("scale").Update(ctx, svc, client.WithSubResourceBody(&autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: n}}))
	}
	update := func(change func(*v1alpha1.FleetInferenceService)) error {
		got := &v1alpha1.FleetInferenceService{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(svc), got); err != nil {
			t.Fatal(err)
		}
		change(got)
		return env.Client.Update(ctx, got)
	}
	const owned = "replicas is the hub autoscaler's"
	if err := update(func(s *v1alpha1.FleetInferenceService) { s.Spec.Replicas = 5 }); err == nil || !strings.Contains(err.Error(), owned) {
		t.Errorf("replicas changed alone under autoscaling: %v", err)
	}
	if err := scale(5); err == nil || !strings.Contains(err.Error(), owned) {
		t.Errorf("scale subresource under autoscaling: %v", err)
	}
	if err := update(func(s *v1alpha1.FleetInferenceService) {
		s.Spec.Replicas, s.Spec.Autoscaling.MaxReplicas = 2, 2
	}); err != nil {
		t.Errorf("replicas changed with the bounds rejected: %v", err)
	}
	if err := update(func(s *v1alpha1.FleetInferenceService) { s.Spec.Autoscaling = nil }); err != nil {
		t.Fatalf("autoscaling removed: %v", err)
	}
	if err := scale(7); err != nil {
		t.Fatalf("scale without autoscaling: %v", err)
	}
	got := &v1alpha1.FleetInferenceService{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(svc), got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.Replicas != 7 {
		t.Fatalf("replicas %d after scaling to 7", got.Spec.Replicas)
	}
}
