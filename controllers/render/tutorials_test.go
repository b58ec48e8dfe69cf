package render

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/fleet"
)

// Tutorials are the five seeds, each reproduced by one sample in a fleet shaped like the
// tutorial's own clusters.
var Tutorials = []struct {
	Seed, Sample string
	Clusters     []fleet.Cluster
}{
	{"000", "fleet_v1alpha1_tpu-v5e.yaml", []fleet.Cluster{{Name: "inference-gateway-lab", Region: "us-central1"}}},
	{"001", "fleet_v1alpha1_gpu-compute-class.yaml", []fleet.Cluster{{Name: "inference-gateway-lab", Region: "us-central1"}}},
	{"002", "fleet_v1alpha1_h100-lora-regional.yaml", []fleet.Cluster{{Name: "gke-central", Region: "us-central1"}}},
	{"003", "fleet_v1alpha1_compute-class.yaml", []fleet.Cluster{{Name: "tpu-gpu-fungibility", Region: "asia-northeast1"}}},
	{"004", "fleet_v1alpha1_two-region-h100.yaml", []fleet.Cluster{{Name: "gke-west", Region: "europe-west3"}, {Name: "gke-east", Region: "us-east4"}}},
}

// renderTutorial renders a tutorial's sample over its clusters: objects by cluster, the
// config cluster under ConfigClusterKey.
func renderTutorial(t *testing.T, seed string) (map[string][]client.Object, *v1alpha1.FleetInferenceService) {
	t.Helper()
	for _, tc := range Tutorials {
		if tc.Seed != seed {
			continue
		}
		svc := loadSample(t, tc.Sample)
		out, err := Fleet([]*v1alpha1.FleetInferenceService{svc}, map[string]*corev1.Secret{svc.Namespace + "/" + svc.Name: tokenFor(svc)}, tc.Clusters)
		if err != nil {
			t.Fatal(err)
		}
		return out, svc
	}
	t.Fatalf("no tutorial %s", seed)
	return nil, nil
}

// TestTutorialsGolden pins everything each tutorial's sample renders, cluster by cluster.
func TestTutorialsGolden(t *testing.T) {
	for _, tc := range Tutorials {
		t.Run(tc.Seed, func(t *testing.T) {
			out, _ := renderTutorial(t, tc.Seed)
			var b strings.Builder
			keys := []string{ConfigClusterKey}
			for _, c := range tc.Clusters {
				keys = append(keys, c.Name)
			}
			for _, k := range keys {
				if len(out[k]) == 0 {
					continue
				}
				name := k
				if k == ConfigClusterKey {
					name = "(config cluster)"
				}
				fmt.Fprintf(&b, "# cluster: %s\n", name)
				b.Write(toYAML(t, out[k]))
			}
			golden(t, filepath.Join("tutorials", tc.Seed+".yaml"), []byte(b.String()))
		})
	}
}

// object returns the one object of a kind and name in objs, as unstructured.
func object(t *testing.T, objs []client.Object, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetObjectKind().GroupVersionKind().Kind != kind || o.GetName() != name {
			continue
		}
		if u, ok := o.(*unstructured.Unstructured); ok {
			return u
		}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			t.Fatal(err)
		}
		return &unstructured.Unstructured{Object: m}
	}
	t.Fatalf("no %s %s among %d objects", kind, name, len(objs))
	return nil
}

// typed returns the one object of a kind and name in objs as its Go type.
func typed[T any](t *testing.T, objs []client.Object, kind, name string) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(object(t, objs, kind, name).Object, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func deploymentOf(t *testing.T, objs []client.Object, name string) *appsv1.Deployment {
	t.Helper()
	return typed[appsv1.Deployment](t, objs, "Deployment", name)
}

func routeOf(t *testing.T, objs []client.Object, name string) *gwv1.HTTPRoute {
	t.Helper()
	return typed[gwv1.HTTPRoute](t, objs, "HTTPRoute", name)
}

func gatewayOf(t *testing.T, objs []client.Object, name string) *gwv1.Gateway {
	t.Helper()
	return typed[gwv1.Gateway](t, objs, "Gateway", name)
}

// regionalGatewayMatchesSeed checks the Gateway of tutorials 000-002 (gateway.yaml): one
// HTTP listener on port 80, class gke-l7-regional-external-managed, no addresses, in the
// member beside the pool; and that the config cluster holds nothing.
func regionalGatewayMatchesSeed(t *testing.T, out map[string][]client.Object, member string) {
	t.Helper()
	if len(out[ConfigClusterKey]) != 0 {
		t.Errorf("a regional service rendered %d objects in the config cluster", len(out[ConfigClusterKey]))
	}
	gw := gatewayOf(t, out[member], "inference-gateway")
	if gw.Spec.GatewayClassName != "gke-l7-regional-external-managed" || len(gw.Spec.Addresses) != 0 {
		t.Errorf("gateway class %s, addresses %v: want the regional class and no addresses", gw.Spec.GatewayClassName, gw.Spec.Addresses)
	}
	if len(gw.Spec.Listeners) != 1 || gw.Spec.Listeners[0].Name != "http" || gw.Spec.Listeners[0].Protocol != gwv1.HTTPProtocolType || gw.Spec.Listeners[0].Port != 80 {
		t.Errorf("listeners %+v", gw.Spec.Listeners)
	}
}

// poolBackend checks that a route sends to the InferencePool itself (tutorials 000-002).
func poolBackend(t *testing.T, r *gwv1.HTTPRoute, pool string, port int32) {
	t.Helper()
	for _, rule := range r.Spec.Rules {
		if len(rule.BackendRefs) != 1 {
			t.Fatalf("backendRefs %+v", rule.BackendRefs)
		}
		b := rule.BackendRefs[0].BackendObjectReference
		if string(*b.Group) != "inference.networking.k8s.io" || string(*b.Kind) != "InferencePool" || string(b.Name) != pool || b.Port == nil || int32(*b.Port) != port {
			t.Errorf("backend %s/%s %s port %v: want the InferencePool %s port %d", *b.Group, *b.Kind, b.Name, b.Port, pool, port)
		}
	}
}

// headerMatches lists the X-Gateway-Model-Name values a route matches, with the path each
// match carries.
func headerMatches(r *gwv1.HTTPRoute) map[string]string {
	out := map[string]string{}
	for _, rule := range r.Spec.Rules {
		for _, m := range rule.Matches {
			for _, h := range m.Headers {
				if string(h.Name) == ModelNameHeader && *h.Type == gwv1.HeaderMatchExact {
					out[h.Value] = *m.Path.Value
				}
			}
		}
	}
	return out
}

// bodyRouterAttached checks the body-based router runs beside the Gateway and, on GKE, is
// attached to it (tutorials 000 and 001 install the body-based-routing chart).
func bodyRouterAttached(t *testing.T, objs []client.Object, gateway string) {
	t.Helper()
	name := BodyBasedRouterName(gateway)
	d := deploymentOf(t, objs, name)
	if img := d.Spec.Template.Spec.Containers[0].Image; img != BodyBasedRouterImage {
		t.Errorf("router image %s", img)
	}
	ext := object(t, objs, "GCPRoutingExtension", name)
	refs, _, _ := unstructured.NestedSlice(ext.Object, "spec", "targetRefs")
	if len(refs) != 1 || refs[0].(map[string]any)["name"] != gateway || refs[0].(map[string]any)["kind"] != "Gateway" {
		t.Errorf("GCPRoutingExtension targets %v, want Gateway %s", refs, gateway)
	}
}

// thirdPartySpec is the spec of a ComputeClass example under config/crd/third-party/testdata.
func thirdPartySpec(t *testing.T, file string) any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "third-party", "testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var u map[string]any
	if err := yaml.Unmarshal(raw, &u); err != nil {
		t.Fatal(err)
	}
	return jsonValue(t, u["spec"])
}

// jsonValue is v as encoding/json decodes it (numbers as float64), to compare with YAML.
func jsonValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func quantity(t *testing.T, l corev1.ResourceList, name corev1.ResourceName, want string) {
	t.Helper()
	if got, ok := l[name]; !ok || got.Cmp(resource.MustParse(want)) != 0 {
		t.Errorf("%s = %v, want %s", name, l[name], want)
	}
}

// TestTutorial000 checks tutorial 000's manifests field by field: TPU v5e Deployment,
// regional external Gateway, route on /v1 with body-based routing, access logging.
func TestTutorial000(t *testing.T) {
	out, svc := renderTutorial(t, "000")
	objs := out["inference-gateway-lab"]
	d := deploymentOf(t, objs, svc.Name)
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	if *d.Spec.Replicas != 2 || c.Image != "vllm/vllm-tpu:latest" {
		t.Errorf("replicas %d image %s", *d.Spec.Replicas, c.Image)
	}
	if !slices.Equal(c.Command, []string{"python3", "-m", "vllm.entrypoints.openai.api_server"}) {
		t.Errorf("command %v", c.Command)
	}
	for _, a := range []string{"--model=Qwen/Qwen2.5-14B-Instruct", "--tensor-parallel-size=4", "--max-model-len=4096", "--gpu-memory-utilization=0.95", "--trust-remote-code", "--disable-log-stats", "--port=8000"} {
		if !slices.Contains(c.Args, a) {
			t.Errorf("args %v lack %s", c.Args, a)
		}
	}
	quantity(t, c.Resources.Requests, "cpu", "8")
	quantity(t, c.Resources.Requests, "memory", "30Gi")
	quantity(t, c.Resources.Requests, "ephemeral-storage", "50Gi")
	quantity(t, c.Resources.Requests, "google.com/tpu", "4")
	quantity(t, c.Resources.Limits, "google.com/tpu", "4")
	if !slices.Contains(c.Env, corev1.EnvVar{Name: "PJRT_DEVICE", Value: "TPU"}) {
		t.Errorf("env %v lacks PJRT_DEVICE=TPU", c.Env)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/health" || p.HTTPGet.Port.IntValue() != 8000 || p.InitialDelaySeconds != 60 || p.PeriodSeconds != 10 {
		t.Errorf("readiness probe %+v, want seed 000's /health:8000 from 60 s every 10 s", p)
	}
	if p := c.StartupProbe; p == nil || p.PeriodSeconds*p.FailureThreshold != 900 {
		t.Errorf("startup probe %+v: want a 900 s budget (the tutorial's wait)", p)
	}
	if pod.NodeSelector["cloud.google.com/gke-tpu-accelerator"] != "tpu-v5-lite-podslice" || pod.NodeSelector["cloud.google.com/gke-tpu-topology"] != "2x2" {
		t.Errorf("node selector %v", pod.NodeSelector)
	}
	regionalGatewayMatchesSeed(t, out, "inference-gateway-lab")
	r := routeOf(t, objs, svc.Name)
	poolBackend(t, r, svc.Name, 8000)
	if got := headerMatches(r); !cmp.Equal(got, map[string]string{"Qwen/Qwen2.5-14B-Instruct": "/v1"}) {
		t.Errorf("body-based matches %v, want only the model on /v1", got)
	}
	bodyRouterAttached(t, objs, "inference-gateway")
	// 5.2: access logging of every request on the pool's backend.
	bp := object(t, objs, "GCPBackendPolicy", svc.Name)
	logging, _, _ := unstructured.NestedMap(bp.Object, "spec", "default", "logging")
	target, _, _ := unstructured.NestedMap(bp.Object, "spec", "targetRef")
	if !cmp.Equal(logging, map[string]any{"enabled": true, "sampleRate": int64(1_000_000)}) || target["kind"] != "InferencePool" || target["name"] != svc.Name {
		t.Errorf("backend policy logging %v target %v", logging, target)
	}
	pool := object(t, objs, "InferencePool", svc.Name)
	if len(pool.GetAnnotations()) != 0 {
		t.Errorf("a regional pool is exported: %v", pool.GetAnnotations())
	}
}

// TestTutorial001 checks tutorial 001: the compute class (reservation, then flex-start,
// then spot) applied with the Deployment, the token Secret, body-based routing that
// rejects another model name.
func TestTutorial001(t *testing.T) {
	out, svc := renderTutorial(t, "001")
	objs := out["inference-gateway-lab"]
	cc := object(t, objs, "ComputeClass", "model-inference-class")
	if cc.GetNamespace() != "" || !OwnedBy(cc, svc) {
		t.Errorf("compute class namespace %q labels %v", cc.GetNamespace(), cc.GetLabels())
	}
	if diff := cmp.Diff(thirdPartySpec(t, "computeclass-2.yaml"), jsonValue(t, cc.Object["spec"])); diff != "" {
		t.Errorf("compute class differs from the documented reservation -> flex-start -> spot class (-want +got):\n%s", diff)
	}
	d := deploymentOf(t, objs, svc.Name)
	if d.Spec.Template.Spec.NodeSelector["cloud.google.com/compute-class"] != "model-inference-class" {
		t.Errorf("node selector %v", d.Spec.Template.Spec.NodeSelector)
	}
	regionalGatewayMatchesSeed(t, out, "inference-gateway-lab")
	r := routeOf(t, objs, svc.Name)
	poolBackend(t, r, svc.Name, 8000)
	got := headerMatches(r)
	if !cmp.Equal(got, map[string]string{"meta-llama/Llama-3.1-8B-Instruct": "/v1"}) {
		t.Errorf("body-based matches %v", got)
	}
	if _, ok := got["meta-llama/Llama-3.1-10B-Instruct"]; ok {
		t.Error("the route matches the model name the tutorial expects to be rejected")
	}
	bodyRouterAttached(t, objs, "inference-gateway")
}

// TestTutorial002 checks tutorial 002's gateway side: the HealthCheckPolicy on the pool
// (/health on 8000), the Gateway, and the HTTPRoute from / to the InferencePool, plus the
// objectives and LoRA adapters of its Deployment.
func TestTutorial002(t *testing.T) {
	out, svc := renderTutorial(t, "002")
	objs := out["gke-central"]
	regionalGatewayMatchesSeed(t, out, "gke-central")
	r := routeOf(t, objs, svc.Name)
	poolBackend(t, r, svc.Name, 8000)
	if len(r.Spec.Rules) != 1 || len(r.Spec.Rules[0].Matches) != 1 || *r.Spec.Rules[0].Matches[0].Path.Value != "/" || *r.Spec.Rules[0].Matches[0].Path.Type != gwv1.PathMatchPathPrefix {
		t.Errorf("route rules %+v, want one PathPrefix / match", r.Spec.Rules)
	}
	if p := r.Spec.ParentRefs; len(p) != 1 || p[0].Name != "inference-gateway" {
		t.Errorf("parentRefs %+v", p)
	}
	hc := object(t, objs, "HealthCheckPolicy", svc.Name)
	http, _, _ := unstructured.NestedMap(hc.Object, "spec", "default", "config", "httpHealthCheck")
	target, _, _ := unstructured.NestedMap(hc.Object, "spec", "targetRef")
	if http["requestPath"] != "/health" || http["port"] != int64(8000) || target["kind"] != "InferencePool" || target["group"] != "inference.networking.k8s.io" || target["name"] != svc.Name {
		t.Errorf("health check %v on %v", http, target)
	}
	for name, prio := range map[string]int64{"food-review": 10, "llama3-base-model": 20} {
		o := object(t, objs, "InferenceObjective", name)
		if p, _, _ := unstructured.NestedInt64(o.Object, "spec", "priority"); p != prio {
			t.Errorf("objective %s priority %d, want %d", name, p, prio)
		}
	}
	cm := object(t, objs, "ConfigMap", LoraConfigMapName(svc))
	cfg, _, _ := unstructured.NestedString(cm.Object, "data", "configmap.yaml")
	for _, s := range []string{"food-review", "Kawon/llama3.1-food-finetune_v14_r8", "cad-fabricator", "redcathode/fabricator", "defaultBaseModel: meta-llama/Llama-3.1-8B-Instruct"} {
		if !strings.Contains(cfg, s) {
			t.Errorf("adapter config lacks %q:\n%s", s, cfg)
		}
	}
	d := deploymentOf(t, objs, svc.Name)
	if *d.Spec.Replicas != 3 || d.Spec.Template.Spec.NodeSelector["cloud.google.com/gke-accelerator"] != "nvidia-h100-80gb" {
		t.Errorf("replicas %d node selector %v", *d.Spec.Replicas, d.Spec.Template.Spec.NodeSelector)
	}
	c := d.Spec.Template.Spec.Containers[0]
	var token *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "HUGGING_FACE_HUB_TOKEN" {
			token = &c.Env[i]
		}
	}
	if token == nil || token.ValueFrom.SecretKeyRef.Key != "hf_api_token" || token.ValueFrom.SecretKeyRef.Name != TokenSecretName(svc) {
		t.Errorf("token env %+v", token)
	}
}

// TestTutorial003 checks the fungibility recipe: the ComputeClass with its node-pool
// priorities, and one container per accelerator kind, each with its own image.
func TestTutorial003(t *testing.T) {
	out, svc := renderTutorial(t, "003")
	objs := out["tpu-gpu-fungibility"]
	cc := object(t, objs, "ComputeClass", "vllm-fallback")
	if diff := cmp.Diff(thirdPartySpec(t, "computeclass-1.yaml"), jsonValue(t, cc.Object["spec"])); diff != "" {
		t.Errorf("compute class differs from the recipe's ccc.yaml (-want +got):\n%s", diff)
	}
	d := deploymentOf(t, objs, svc.Name)
	images := map[string]string{}
	for _, c := range d.Spec.Template.Spec.Containers {
		images[c.Name] = c.Image
	}
	want := map[string]string{
		"vllm-tpu": "asia-northeast1-docker.pkg.dev/my-project/docker-repo/vllm-fungibility:TPU",
		"vllm-gpu": "asia-northeast1-docker.pkg.dev/my-project/docker-repo/vllm-fungibility:GPU",
	}
	if !cmp.Equal(images, want) {
		t.Errorf("containers and images %v, want %v", images, want)
	}
	if d.Spec.Template.Spec.NodeSelector["cloud.google.com/compute-class"] != "vllm-fallback" {
		t.Errorf("node selector %v", d.Spec.Template.Spec.NodeSelector)
	}
}

// TestComputeClassOnlyWhereUsed checks that a class goes only to members whose model
// server uses it: a cluster whose override names another class, or none, gets none.
func TestComputeClassOnlyWhereUsed(t *testing.T) {
	svc := loadSample(t, "fleet_v1alpha1_compute-class.yaml")
	other := "l4-only"
	svc.Spec.Placement.Clusters = []v1alpha1.ClusterPlacement{
		{Name: "a"},
		{Name: "b", Overrides: &v1alpha1.ClusterOverrides{ComputeClass: &other, Accelerator: &v1alpha1.AcceleratorSpec{Type: "nvidia-l4", Count: 1}}},
	}
	for cluster, want := range map[string]int{"a": 1, "b": 0} {
		objs, err := Member(svc, MemberInput{Cluster: fleet.Cluster{Name: cluster}, Replicas: 1, TokenSecret: tokenFor(svc)})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, o := range objs {
			if o.GetObjectKind().GroupVersionKind() == GVKComputeClass {
				n++
			}
		}
		if n != want {
			t.Errorf("cluster %s: %d compute classes, want %d", cluster, n, want)
		}
	}
}

// TestRegionalServiceNeedsOneCluster checks that a regional Gateway over two selected
// clusters is an error naming the field, in the renderer as in the hub.
func TestRegionalServiceNeedsOneCluster(t *testing.T) {
	svc := loadSample(t, "fleet_v1alpha1_tpu-v5e.yaml")
	svc.Spec.Placement.Clusters = nil
	svc.Spec.Placement.ClusterSelector = &metav1.LabelSelector{}
	_, err := Fleet([]*v1alpha1.FleetInferenceService{svc}, nil, []fleet.Cluster{{Name: "a", Region: "us-central1"}, {Name: "b", Region: "us-east4"}})
	if err == nil || !strings.Contains(err.Error(), "spec.placement") || !strings.Contains(err.Error(), "exactly one") {
		t.Errorf("want an error naming spec.placement, got %v", err)
	}
}
