package render

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	infv1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"
	infv1alpha2 "sigs.k8s.io/gateway-api-inference-extension/apix/v1alpha2"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/fleet"
)

func loadSample(t *testing.T, name string) *v1alpha1.FleetInferenceService {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	svc := &v1alpha1.FleetInferenceService{}
	if err := yaml.UnmarshalStrict(raw, svc); err != nil {
		t.Fatal(err)
	}
	svc.UID = "00000000-0000-0000-0000-000000000001"
	v1alpha1.SetDefaults(svc)
	if err := svc.Validate(); err != nil {
		t.Fatal(err)
	}
	return svc
}

func tokenFor(svc *v1alpha1.FleetInferenceService) *corev1.Secret {
	ref := svc.Spec.Model.Server.HuggingFaceTokenSecretRef
	if ref == nil {
		return nil
	}
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{v1alpha1.LabelCopyToMembers: "true"}}, Data: map[string][]byte{ref.Key: []byte("hf_test_token")}}
}

// memberCases are the seed scenarios, rendered for one member each.
var memberCases = []struct {
	sample, golden string
	cluster        fleet.Cluster
	replicas       int32
}{
	{"fleet_v1alpha1_two-region-h100.yaml", "h100-lora.yaml", fleet.Cluster{Name: "gke-west", Region: "europe-west3"}, 3},
	{"fleet_v1alpha1_tpu-v5e.yaml", "tpu-v5e.yaml", fleet.Cluster{Name: "tpu-east", Region: "us-east5"}, 2},
	{"fleet_v1alpha1_compute-class.yaml", "compute-class.yaml", fleet.Cluster{Name: "gke-asia", Region: "asia-northeast1"}, 3},
}

func TestMemberGolden(t *testing.T) {
	for _, tc := range memberCases {
		t.Run(tc.golden, func(t *testing.T) {
			svc := loadSample(t, tc.sample)
			objs, err := Member(svc, MemberInput{Cluster: tc.cluster, Replicas: tc.replicas, TokenSecret: tokenFor(svc)})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				if o.GetObjectKind().GroupVersionKind().Kind == "" {
					t.Errorf("%T %s has no kind: server-side apply needs it", o, o.GetName())
				}
				if !OwnedBy(o, svc) || o.GetLabels()[LabelUID] != string(svc.UID) {
					t.Errorf("%T %s lacks the ownership labels: %v", o, o.GetName(), o.GetLabels())
				}
			}
			got := toYAML(t, objs)
			again, _ := Member(svc, MemberInput{Cluster: tc.cluster, Replicas: tc.replicas, TokenSecret: tokenFor(svc)})
			if string(toYAML(t, again)) != string(got) {
				t.Fatal("output is not deterministic")
			}
			golden(t, filepath.Join("member", tc.golden), got)
		})
	}
}

func find[T client.Object](t *testing.T, objs []client.Object, name string) T {
	t.Helper()
	for _, o := range objs {
		if v, ok := o.(T); ok && o.GetName() == name {
			return v
		}
	}
	var zero T
	t.Fatalf("no %T named %s", zero, name)
	return zero
}

func render(t *testing.T, sample string, replicas int32, mutate func(*v1alpha1.FleetInferenceService)) ([]client.Object, *v1alpha1.FleetInferenceService) {
	t.Helper()
	svc := loadSample(t, sample)
	if mutate != nil {
		mutate(svc)
		v1alpha1.SetDefaults(svc)
	}
	objs, err := Member(svc, MemberInput{Cluster: fleet.Cluster{Name: "gke-west"}, Replicas: replicas, TokenSecret: tokenFor(svc)})
	if err != nil {
		t.Fatal(err)
	}
	return objs, svc
}

// TestModelServerMatchesSeeds checks, field by field, the values the seeds define.
func TestModelServerMatchesSeeds(t *testing.T) {
	objs, svc := render(t, "fleet_v1alpha1_two-region-h100.yaml", 3, nil)
	d := find[*appsv1.Deployment](t, objs, svc.Name)
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]

	if *d.Spec.Replicas != 3 || d.Spec.Selector.MatchLabels["app"] != svc.Name || d.Spec.Template.Labels["app"] != svc.Name {
		t.Errorf("replicas/selector/labels wrong: %d %v %v", *d.Spec.Replicas, d.Spec.Selector, d.Spec.Template.Labels)
	}
	if len(d.Spec.Selector.MatchLabels) != 1 {
		t.Errorf("selector must stay {app: name} (immutable), got %v", d.Spec.Selector.MatchLabels)
	}
	// seed 002: enableServiceLinks false, grace 130, preStop sleep 30, probes on /health.
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks || *pod.TerminationGracePeriodSeconds != 130 {
		t.Errorf("enableServiceLinks/terminationGracePeriodSeconds: %v %v", pod.EnableServiceLinks, *pod.TerminationGracePeriodSeconds)
	}
	if c.Lifecycle.PreStop.Sleep.Seconds != 30 {
		t.Errorf("preStop sleep %d", c.Lifecycle.PreStop.Sleep.Seconds)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		if p.HTTPGet.Path != "/health" || p.HTTPGet.Port.String() != "http" || p.PeriodSeconds != 1 {
			t.Errorf("%s probe %+v", name, p)
		}
	}
	if c.LivenessProbe.FailureThreshold != 5 || c.ReadinessProbe.FailureThreshold != 1 || c.StartupProbe.FailureThreshold != 600 || c.StartupProbe.InitialDelaySeconds != 2 {
		t.Errorf("probe thresholds differ from seed 002")
	}
	// seed 002's wrapper: the NVIDIA driver paths, then vLLM with every argument.
	wantArgs := []string{"PATH=$PATH:/usr/local/nvidia/bin LD_LIBRARY_PATH=$LD_LIBRARY_PATH:/usr/local/nvidia/lib:/usr/local/nvidia/lib64" +
		" python3 -m vllm.entrypoints.openai.api_server --model=meta-llama/Llama-3.1-8B-Instruct --port=8000" +
		" --tensor-parallel-size=1 --max-num-seq=1024 --max-loras=2 --max-cpu-loras=12 --enable-lora"}
	if strings.Join(c.Command, " ") != "sh -c" || len(c.Args) != 1 || c.Args[0] != wantArgs[0] {
		t.Errorf("command %q args\n got %q\nwant %q", c.Command, c.Args, wantArgs)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"].Value != "true" || env["PORT"].Value != "8000" || env["VLLM_USE_V1"].Value != "1" {
		t.Errorf("LoRA/PORT/VLLM_USE_V1 env missing: %v", c.Env)
	}
	if ref := env["HUGGING_FACE_HUB_TOKEN"].ValueFrom; ref == nil || ref.SecretKeyRef.Name != TokenSecretName(svc) || ref.SecretKeyRef.Key != "token" {
		t.Errorf("token env %+v", env["HUGGING_FACE_HUB_TOKEN"])
	}
	if q := c.Resources.Limits["nvidia.com/gpu"]; q.Cmp(resource.MustParse("1")) != 0 {
		t.Errorf("gpu limit %v", c.Resources.Limits)
	}
	if pod.NodeSelector["cloud.google.com/gke-accelerator"] != "nvidia-h100-80gb" {
		t.Errorf("node selector %v", pod.NodeSelector)
	}
	shm := false
	for _, v := range pod.Volumes {
		if v.Name == "shm" && v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory {
			shm = true
		}
	}
	if !shm {
		t.Error("no memory-backed /dev/shm volume")
	}
	// seed 002's sidecar and its ConfigMap.
	side := pod.Containers[1]
	if side.Name != "lora-adapter-syncer" || side.Env[0].Value != "/config/configmap.yaml" || side.VolumeMounts[0].SubPath != "" {
		t.Errorf("syncer %+v", side)
	}
	cm := find[*corev1.ConfigMap](t, objs, LoraConfigMapName(svc))
	var cfg struct {
		VLLMLoRAConfig struct {
			Name, DefaultBaseModel string
			Port                   int
			EnsureExist            struct{ Models []struct{ ID, Source string } }
		} `json:"vLLMLoRAConfig"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["configmap.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	if m := cfg.VLLMLoRAConfig.EnsureExist.Models; len(m) != 1 || m[0].ID != "food-review-1" || m[0].Source != "Kawon/llama3.1-food-finetune_v14_r8" ||
		cfg.VLLMLoRAConfig.DefaultBaseModel != svc.Spec.Model.Name || cfg.VLLMLoRAConfig.Port != 8000 {
		t.Errorf("lora config %+v", cfg)
	}

	pool := find[*infv1.InferencePool](t, objs, svc.Name)
	if pool.Annotations["networking.gke.io/export"] != "True" || pool.Spec.Selector.MatchLabels["app"] != infv1.LabelValue(svc.Name) ||
		pool.Spec.TargetPorts[0].Number != 8000 || string(pool.Spec.EndpointPickerRef.Name) != svc.Name+"-epp" || pool.Spec.EndpointPickerRef.Port.Number != 9002 {
		t.Errorf("pool %+v", pool)
	}
	for _, o := range svc.Spec.Objectives {
		io := find[*infv1alpha2.InferenceObjective](t, objs, o.Name)
		if *io.Spec.Priority != int(*o.Priority) || string(io.Spec.PoolRef.Name) != svc.Name || io.Spec.PoolRef.Group != "inference.networking.k8s.io" {
			t.Errorf("objective %+v", io.Spec)
		}
	}
	var am *unstructured.Unstructured
	for _, o := range objs {
		if u, ok := o.(*unstructured.Unstructured); ok && u.GroupVersionKind() == GVKAutoscalingMetric {
			am = u
		}
	}
	if am == nil {
		t.Fatal("no AutoscalingMetric")
	}
	metrics, _, _ := unstructured.NestedSlice(am.Object, "spec", "endpoints")
	ep := metrics[0].(map[string]any)
	ms := ep["metrics"].([]any)
	if ep["path"] != "/metrics" || ep["port"] != int64(8000) ||
		ms[0].(map[string]any)["name"] != "vllm:kv_cache_usage_perc" || ms[0].(map[string]any)["exportName"] != "kv-cache" ||
		ms[1].(map[string]any)["name"] != "vllm:gpu_cache_usage_perc" || ms[1].(map[string]any)["exportName"] != "kv-cache-old" {
		t.Errorf("autoscaling metric %v", am.Object["spec"])
	}
	s := find[*corev1.Secret](t, objs, TokenSecretName(svc))
	if string(s.Data["token"]) != "hf_test_token" || len(s.Data) != 1 {
		t.Errorf("secret copy %v", s.Data)
	}
}

func TestTPUMatchesSeed000(t *testing.T) {
	objs, svc := render(t, "fleet_v1alpha1_tpu-v5e.yaml", 2, nil)
	d := find[*appsv1.Deployment](t, objs, svc.Name)
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	if pod.NodeSelector["cloud.google.com/gke-tpu-accelerator"] != "tpu-v5-lite-podslice" || pod.NodeSelector["cloud.google.com/gke-tpu-topology"] != "2x2" {
		t.Errorf("node selector %v", pod.NodeSelector)
	}
	if q := c.Resources.Limits["google.com/tpu"]; q.Value() != 4 {
		t.Errorf("tpu limit %v", c.Resources.Limits)
	}
	if q := c.Resources.Requests["google.com/tpu"]; q.Value() != 4 {
		t.Errorf("tpu request %v", c.Resources.Requests)
	}
	pjrt := false
	for _, e := range c.Env {
		pjrt = pjrt || (e.Name == "PJRT_DEVICE" && e.Value == "TPU")
	}
	if !pjrt || strings.Join(c.Command, " ") != "python3 -m vllm.entrypoints.openai.api_server" || c.Image != "vllm/vllm-tpu:latest" {
		t.Errorf("container %+v", c)
	}
	if _, ok := c.Resources.Limits["nvidia.com/gpu"]; ok {
		t.Error("a TPU server asks for a GPU")
	}
	// No LoRA: no syncer, no ConfigMap, no token Secret.
	for _, o := range objs {
		if _, ok := o.(*corev1.ConfigMap); ok && o.GetName() == LoraConfigMapName(svc) {
			t.Error("LoRA ConfigMap rendered without adapters")
		}
		if _, ok := o.(*corev1.Secret); ok {
			t.Error("token Secret rendered without a reference")
		}
	}
	if len(pod.Containers) != 1 {
		t.Errorf("containers %d", len(pod.Containers))
	}
}

func TestComputeClassMatchesSeed003(t *testing.T) {
	objs, svc := render(t, "fleet_v1alpha1_compute-class.yaml", 3, nil)
	pod := find[*appsv1.Deployment](t, objs, svc.Name).Spec.Template.Spec
	if pod.NodeSelector["cloud.google.com/compute-class"] != "vllm-fallback" || len(pod.NodeSelector) != 1 {
		t.Errorf("node selector %v: a fungible pod selects only its compute class", pod.NodeSelector)
	}
	tol := map[string]bool{}
	for _, x := range pod.Tolerations {
		tol[x.Key+"="+x.Value] = true
	}
	for _, k := range []string{"cloud.google.com/compute-class=vllm-fallback", "google.com/tpu=", "nvidia.com/gpu="} {
		if !tol[k] {
			t.Errorf("missing toleration %s in %v", k, pod.Tolerations)
		}
	}
	if len(pod.Containers) != 2 || pod.Containers[0].Name != "vllm-tpu" || pod.Containers[1].Name != "vllm-gpu" {
		t.Fatalf("want one container per accelerator, got %d", len(pod.Containers))
	}
	for _, c := range pod.Containers {
		if len(c.Resources.Limits) != 0 {
			t.Errorf("%s requests accelerators %v: the pod could then fit neither node", c.Name, c.Resources.Limits)
		}
	}
	if !strings.Contains(pod.Containers[0].Command[2], "/dev/accel0") || !strings.Contains(pod.Containers[1].Command[2], "/dev/nvidia0") {
		t.Errorf("hardware checks %q / %q", pod.Containers[0].Command[2], pod.Containers[1].Command[2])
	}
}

func TestClusterOverrides(t *testing.T) {
	objs, _ := render(t, "fleet_v1alpha1_two-region-h100.yaml", 2, func(s *v1alpha1.FleetInferenceService) {
		cc := "l4-fallback"
		s.Spec.Placement.Clusters[0].Overrides = &v1alpha1.ClusterOverrides{
			Accelerator:  &v1alpha1.AcceleratorSpec{Type: "nvidia-l4", Count: 2},
			Image:        "vllm/vllm-openai:v0.11.0",
			Env:          []corev1.EnvVar{{Name: "PORT", Value: "8000"}, {Name: "EXTRA", Value: "1"}},
			ComputeClass: &cc,
		}
	})
	d := find[*appsv1.Deployment](t, objs, "vllm-llama3-8b-instruct")
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != "vllm/vllm-openai:v0.11.0" || d.Spec.Template.Spec.NodeSelector["cloud.google.com/gke-accelerator"] != "nvidia-l4" ||
		d.Spec.Template.Spec.NodeSelector["cloud.google.com/compute-class"] != "l4-fallback" {
		t.Errorf("override not applied: %s %v", c.Image, d.Spec.Template.Spec.NodeSelector)
	}
	if q := c.Resources.Limits["nvidia.com/gpu"]; q.Value() != 2 {
		t.Errorf("gpu count %v", c.Resources.Limits)
	}
	names := map[string]int{}
	for _, e := range c.Env {
		names[e.Name]++
	}
	if names["PORT"] != 1 || names["EXTRA"] != 1 {
		t.Errorf("env merge duplicates or drops: %v", c.Env)
	}
}

func TestProviderInferencePoolImport(t *testing.T) {
	objs, svc := render(t, "fleet_v1alpha1_two-region-h100.yaml", 3, func(s *v1alpha1.FleetInferenceService) {
		s.Spec.Gateway.Provider = v1alpha1.ProviderInferencePoolImport
		s.Spec.Gateway.ClassName = "istio"
	})
	pool := find[*infv1.InferencePool](t, objs, svc.Name)
	if pool.Annotations["inference.networking.x-k8s.io/export"] != "ClusterSet" || pool.Annotations["networking.gke.io/export"] != "" {
		t.Errorf("export annotation %v", pool.Annotations)
	}
	for _, o := range objs {
		if g := o.GetObjectKind().GroupVersionKind().Group; strings.HasSuffix(g, "gke.io") {
			t.Errorf("GKE-only %s rendered for the open-source provider", o.GetObjectKind().GroupVersionKind().Kind)
		}
	}
}

func TestMissingTokenSecretIsAnError(t *testing.T) {
	svc := loadSample(t, "fleet_v1alpha1_two-region-h100.yaml")
	_, err := Member(svc, MemberInput{Cluster: fleet.Cluster{Name: "a"}, Replicas: 1})
	if err == nil || !strings.Contains(err.Error(), "hf-token") {
		t.Fatalf("want an error naming the Secret, got %v", err)
	}
	shared := map[string]string{v1alpha1.LabelCopyToMembers: "true"}
	_, err = Member(svc, MemberInput{Cluster: fleet.Cluster{Name: "a"}, Replicas: 1, TokenSecret: &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hf-token", Labels: shared}}})
	if err == nil || !strings.Contains(err.Error(), `no key "token"`) {
		t.Fatalf("want an error naming the key, got %v", err)
	}
	// A Secret nobody marked as shared with members is not copied, whatever it holds.
	for _, labels := range []map[string]string{nil, {v1alpha1.LabelCopyToMembers: "false"}, {"other": "true"}} {
		_, err = Member(svc, MemberInput{Cluster: fleet.Cluster{Name: "a"}, Replicas: 1, TokenSecret: &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "hf-token", Labels: labels}, Data: map[string][]byte{"token": []byte("hf_x")}}})
		if err == nil || !strings.Contains(err.Error(), "default/hf-token") || !strings.Contains(err.Error(), v1alpha1.LabelCopyToMembers+"=true") {
			t.Errorf("labels %v: want an error naming the Secret and the label, got %v", labels, err)
		}
	}
}
