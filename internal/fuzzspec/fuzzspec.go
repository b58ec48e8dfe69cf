// Package fuzzspec turns fuzz input into FleetInferenceService objects: each pair of bytes
// sets one field of a valid base object to one of a few values that matter to validation
// or rendering (valid ones, edge cases, contradictions). The fuzzer then explores
// combinations of fields, which is where validation and rendering disagree, instead of
// byte strings an API server would reject as malformed JSON.
package fuzzspec

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// BaseSample is the base object: the two-region tutorial's sample.
const BaseSample = "fleet_v1alpha1_two-region-h100.yaml"

// Base reads the base object from config/samples under root.
func Base(root string) (map[string]any, error) {
	raw, err := os.ReadFile(filepath.Join(root, "config", "samples", BaseSample))
	if err != nil {
		return nil, err
	}
	obj := map[string]any{}
	return obj, yaml.Unmarshal(raw, &obj)
}

// field is a path and the values the fuzzer may give it; a nil value removes the field.
type field struct {
	path   string
	values []any
}

func m(kv ...any) map[string]any {
	out := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func l(items ...any) []any { return items }

var waiting = l(m("type", "WaitingRequests", "averageValue", "5"))

// fields are what the fuzzer varies: each field the API validates (schema, enums, ranges
// and CEL) or the renderers branch on. An explicit 0 is left out where Go reads it as unset
// and defaults it (server port, accelerator count, endpoint picker replicas), as the API
// server defaults an absent field: the two cannot differ in Go.
var fields = []field{
	{"metadata.name", l("llama", "9svc", strings.Repeat("a", 59), "a")},
	{"spec.replicas", l(int64(0), int64(1), int64(7), int64(-1), int64(10001))},
	{"spec.model.name", l("meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-14B-Instruct", "")},
	{"spec.model.accelerator", l(
		m("type", "nvidia-h100-80gb", "count", int64(1)), m("type", "nvidia-l4", "count", int64(2)),
		m("type", "tpu-v5-lite-podslice", "count", int64(4), "topology", "2x2"), m("type", "tpu-v6e-slice", "count", int64(4)),
		m("type", "tpu-v6e-slice", "count", int64(8), "topology", "2by4"), m("type", "nvidia-h100-80gb", "count", int64(1), "topology", "2x2"),
		m("type", "amd-mi300x", "count", int64(1)), m("type", "nvidia-h100-80gb", "count", int64(-1)), nil)},
	{"spec.model.server.port", l(int64(8000), int64(9000), int64(-1), int64(70000))},
	{"spec.model.server.args", l(l(), l("--max-model-len=4096"), l("--model=other"), l("--port", "9000"), l("--enable-lora"), nil)},
	{"spec.model.server.huggingFaceTokenSecretRef", l(m("name", "hf-token", "key", "token"), m("name", "hf-token"), m("name", ""), nil)},
	{"spec.model.loraAdapters", l(l(m("id", "a", "source", "x/y")), l(m("id", "a", "source", "x"), m("id", "a", "source", "y")),
		l(m("id", "A_b", "source", "x")), l(m("id", "a")), l(), nil)},
	{"spec.model.computeClass", l("vllm-fallback", "", nil)},
	{"spec.model.fallbackAccelerators", l(l(m("type", "nvidia-l4")), l(m("type", "tpu-v6e-slice", "count", int64(4), "topology", "2x2")), nil)},
	{"spec.computeClasses", l(l(m("name", "vllm-fallback", "priorities", l(m("nodepools", l("a"))))),
		l(m("name", "vllm-fallback", "priorities", l(m("gpu", m("type", "nvidia-l4", "count", int64(1)))))),
		l(m("name", "spare", "priorities", l(m("nodepools", l("a"))))), l(m("name", "vllm-fallback", "priorities", l())), nil)},
	{"spec.objectives", l(l(m("name", "a")), l(m("name", "a"), m("name", "a")), l(m("name", "Bad_Name")),
		l(m("name", "a", "priority", int64(10)), m("name", "b", "priority", int64(-3))), l(), nil)},
	{"spec.placement.clusters", l(l(m("name", "gke-west"), m("name", "gke-east")), l(m("name", "gke-west")),
		l(m("name", "gke-west", "weight", int64(-1))), l(m("name", "gke-west", "minReplicas", int64(5), "maxReplicas", int64(2))),
		l(m("name", "gke-west", "weight", int64(0)), m("name", "gke-east", "weight", int64(3), "maxReplicas", int64(2))),
		l(m("name", "GKE_West")), l(m("name", "gke-west"), m("name", "gke-west")),
		l(m("name", "gke-west", "overrides", m("computeClass", "vllm-fallback", "args", l("--max-model-len=2048")))),
		l(m("name", "gke-west", "overrides", m("args", l("--port", "1")))), nil)},
	{"spec.placement.clusterSelector", l(m("matchLabels", m("tier", "gpu")), nil)},
	{"spec.placement.failover", l(m("policy", "Redistribute", "unhealthyAfter", "30s", "failbackAfter", "2m"),
		m("policy", "None"), m("unhealthyAfter", "0s"), m("unhealthyAfter", "-1s"), m("failbackAfter", "1h"), nil)},
	{"spec.placement.spillover", l(m("policy", "Spill", "after", "2m"), m("policy", "None"), m("policy", "Borrow"),
		m("after", "48h"), m("scaleUpTimeout", "-1m"), nil)},
	{"spec.gateway.provider", l("GKE", "InferencePoolImport", "AWS", nil)},
	{"spec.gateway.className", l("gke-l7-cross-regional-internal-managed-mc", "gke-l7-rilb", "gke-l7-regional-external-managed", "istio", "", nil)},
	{"spec.gateway.mode", l("MultiCluster", "Regional", "Global", nil)},
	{"spec.gateway.bodyBasedRouting", l(true, false, nil)},
	{"spec.gateway.pathPrefix", l("/v1", "v1", "/", nil)},
	{"spec.gateway.name", l("cross-region-gateway", "Cross_Region", "gw", nil)},
	{"spec.gateway.logging", l(m("enabled", true), m("enabled", false), nil)},
	{"spec.balancing", l(m("mode", "CustomMetrics", "customMetric", m("name", "kv-cache", "maxUtilization", int64(60))),
		m("mode", "InFlight", "maxInFlightRequestsPerEndpoint", int64(100)), m("mode", "InFlight"),
		m("mode", "CustomMetrics", "maxInFlightRequestsPerEndpoint", int64(100)), m("customMetric", m("maxUtilization", int64(101))),
		m("mode", "RoundRobin"), m(), nil)},
	{"spec.endpointPicker", l(m("replicas", int64(2), "failureMode", "FailClose"), m("replicas", int64(11)), m("replicas", int64(-1)),
		m("monitoring", m("gke", true)), m("image", "example.com/epp:v1"), nil)},
	{"spec.autoscaling", l(m("maxReplicas", int64(8), "metrics", waiting),
		m("minReplicas", int64(0), "maxReplicas", int64(8), "idleWindowSeconds", int64(60), "metrics", l(m("type", "KVCacheUtilization", "averageUtilization", int64(70)))),
		m("minReplicas", int64(5), "maxReplicas", int64(2), "metrics", waiting), m("maxReplicas", int64(8), "metrics", l()),
		m("maxReplicas", int64(8), "idleWindowSeconds", int64(60), "metrics", waiting),
		m("maxReplicas", int64(8), "metrics", l(m("type", "KVCacheUtilization", "averageValue", "5"))),
		m("maxReplicas", int64(8), "metrics", l(m("type", "RunningRequests", "averageValue", "0"))),
		m("maxReplicas", int64(8), "metrics", l(m("type", "WaitingRequests", "averageValue", "5"), m("type", "WaitingRequests", "averageValue", "3"))),
		m("minReplicas", int64(-1), "maxReplicas", int64(8), "metrics", waiting), nil)},
	{"spec.deletionPolicy", l("Delete", "Orphan", "Keep", nil)},
}

// Object is the base object with the fields the input's byte pairs choose: the first byte
// of a pair picks the field, the second its value.
func Object(base map[string]any, input []byte) *unstructured.Unstructured {
	obj := runtimeDeepCopy(base)
	for i := 0; i+1 < len(input); i += 2 {
		f := fields[int(input[i])%len(fields)]
		v := f.values[int(input[i+1])%len(f.values)]
		path := strings.Split(f.path, ".")
		if v == nil {
			unstructured.RemoveNestedField(obj, path...)
			continue
		}
		_ = unstructured.SetNestedField(obj, deepCopyValue(v), path...)
	}
	return &unstructured.Unstructured{Object: obj}
}

// Seeds are inputs worth starting from: each field at each of its values, alone.
func Seeds() [][]byte {
	var out [][]byte
	for i, f := range fields {
		for j := range f.values {
			out = append(out, []byte{byte(i), byte(j)})
		}
	}
	return out
}

func runtimeDeepCopy(obj map[string]any) map[string]any {
	return deepCopyValue(obj).(map[string]any)
}

// deepCopyValue copies the JSON-shaped values above (maps, slices, scalars).
func deepCopyValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = deepCopyValue(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = deepCopyValue(x)
		}
		return out
	default:
		return v
	}
}

// Start prepares a fuzz target: the base object, every seed added, and a real API server
// with the project's CRDs (testenv.ForFuzz).
func Start(f *testing.F) (map[string]any, *testenv.Env) {
	f.Helper()
	base, err := Base(testenv.Root())
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range Seeds() {
		f.Add(s)
	}
	return base, testenv.ForFuzz(f, testenv.CRDs())
}

// Decode reads an object as the hub does (JSON into the typed service) and defaults it.
func Decode(obj map[string]any) (*v1alpha1.FleetInferenceService, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	svc := &v1alpha1.FleetInferenceService{}
	if err := json.Unmarshal(raw, svc); err != nil {
		return nil, err
	}
	v1alpha1.SetDefaults(svc)
	return svc, nil
}
