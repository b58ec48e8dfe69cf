package render

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

const (
	h100Sample     = "fleet_v1alpha1_two-region-h100.yaml"
	tpuSample      = "fleet_v1alpha1_tpu-v5e.yaml"
	fungibleSample = "fleet_v1alpha1_compute-class.yaml"
)

// containers renders sample for the cluster gke-west and returns the model server
// containers by name (the LoRA syncer left out).
func containers(t *testing.T, sample string, mutate func(*v1alpha1.FleetInferenceService)) (map[string]corev1.Container, corev1.PodSpec) {
	t.Helper()
	objs, svc := render(t, sample, 1, mutate)
	pod := find[*appsv1.Deployment](t, objs, svc.Name).Spec.Template.Spec
	out := map[string]corev1.Container{}
	for _, c := range pod.Containers {
		if strings.HasPrefix(c.Name, "vllm") {
			out[c.Name] = c
		}
	}
	return out, pod
}

// inCluster places svc on gke-west alone, with overrides there.
func inCluster(o *v1alpha1.ClusterOverrides) func(*v1alpha1.FleetInferenceService) {
	return func(s *v1alpha1.FleetInferenceService) {
		s.Spec.Placement.ClusterSelector = nil
		s.Spec.Placement.Clusters = []v1alpha1.ClusterPlacement{{Name: "gke-west", Overrides: o}}
	}
}

func both(fs ...func(*v1alpha1.FleetInferenceService)) func(*v1alpha1.FleetInferenceService) {
	return func(s *v1alpha1.FleetInferenceService) {
		for _, f := range fs {
			f(s)
		}
	}
}

func envValue(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func TestShellQuote(t *testing.T) {
	cases := []struct{ in, want string }{
		{"--model=meta-llama/Llama-3.1-8B-Instruct", "--model=meta-llama/Llama-3.1-8B-Instruct"},
		{"--gpu-memory-utilization=0.95", "--gpu-memory-utilization=0.95"},
		{"--served-model-name=a,b:c@d%e+f", "--served-model-name=a,b:c@d%e+f"},
		{"", "''"},
		{"two words", "'two words'"},
		{"--chat-template={{ messages }}", "'--chat-template={{ messages }}'"},
		{"$HOME", "'$HOME'"},
		{"it's", `'it'\''s'`},
		{`"quoted"`, `'"quoted"'`},
		{"a;rm -rf /", "'a;rm -rf /'"},
		{"*.json", "'*.json'"},
		{"~/models", "'~/models'"},
		{"back`tick`", "'back`tick`'"},
		{"line\nbreak", "'line\nbreak'"},
	}
	sh, err := exec.LookPath("sh")
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			if got := shellQuote(tc.in); got != tc.want {
				t.Fatalf("shellQuote(%q) = %s, want %s", tc.in, got, tc.want)
			}
			if err != nil {
				return
			}
			// The shell must hand the program exactly the original string back.
			out, err := exec.Command(sh, "-c", "printf %s "+shellQuote(tc.in)).Output()
			if err != nil || string(out) != tc.in {
				t.Errorf("sh read %s back as %q (%v)", shellQuote(tc.in), out, err)
			}
		})
	}
}

// TestGPUWrapperQuotesArguments: an argument the shell would split or expand reaches vLLM
// as one word.
func TestGPUWrapperQuotesArguments(t *testing.T) {
	cs, _ := containers(t, h100Sample, func(s *v1alpha1.FleetInferenceService) {
		s.Spec.Model.Server.Args = []string{"--chat-template=a b", "--api-key=$ecret"}
	})
	c := cs["vllm"]
	want := " --enable-lora --max-loras=1"
	if got := c.Args[0]; !strings.HasSuffix(got, "--port=8000 '--chat-template=a b' '--api-key=$ecret'"+want) {
		t.Errorf("wrapper %q", got)
	}
}

func TestVLLMUseV1OnlyOnGPU(t *testing.T) {
	cases := []struct {
		name, sample string
		mutate       func(*v1alpha1.FleetInferenceService)
		want         map[string]bool // container -> has VLLM_USE_V1=1
	}{
		{"H100", h100Sample, nil, map[string]bool{"vllm": true}},
		{"TPU v5e", tpuSample, nil, map[string]bool{"vllm": false}},
		{"fungible", fungibleSample, nil, map[string]bool{"vllm-tpu": false, "vllm-gpu": true}},
		{"CPU", h100Sample, func(s *v1alpha1.FleetInferenceService) { s.Spec.Model.Accelerator = nil }, map[string]bool{"vllm": false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cs, _ := containers(t, tc.sample, tc.mutate)
			if len(cs) != len(tc.want) {
				t.Fatalf("containers %v", cs)
			}
			for name, want := range tc.want {
				v, ok := envValue(cs[name], "VLLM_USE_V1")
				if got := ok && v == "1"; got != want {
					t.Errorf("%s: VLLM_USE_V1 set %v, want %v", name, got, want)
				}
			}
		})
	}
}

func TestTPUAndCPUKeepPlainCommand(t *testing.T) {
	for _, tc := range []struct {
		name, sample string
		mutate       func(*v1alpha1.FleetInferenceService)
	}{
		{"TPU", tpuSample, nil},
		{"CPU", h100Sample, func(s *v1alpha1.FleetInferenceService) { s.Spec.Model.Accelerator = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustOne(t, tc.sample, tc.mutate)
			if strings.Join(c.Command, " ") != "python3 -m vllm.entrypoints.openai.api_server" || !strings.HasPrefix(c.Args[0], "--model=") {
				t.Errorf("command %q args %q", c.Command, c.Args)
			}
		})
	}
}

func mustOne(t *testing.T, sample string, mutate func(*v1alpha1.FleetInferenceService)) corev1.Container {
	t.Helper()
	cs, _ := containers(t, sample, mutate)
	c, ok := cs["vllm"]
	if !ok || len(cs) != 1 {
		t.Fatalf("want one container named vllm, got %v", cs)
	}
	return c
}

func TestAcceleratorImages(t *testing.T) {
	const server, tpuImg, gpuImg, clusterImg, clusterAccelImg = "vllm/vllm-openai:latest", "vllm/vllm-tpu:v1", "vllm/vllm-openai:v1", "vllm/vllm-openai:cluster", "vllm/vllm-tpu:cluster"
	images := func(s *v1alpha1.FleetInferenceService) {
		s.Spec.Model.Accelerator.Image = tpuImg
		s.Spec.Model.FallbackAccelerators[0].Image = gpuImg
	}
	cases := []struct {
		name   string
		mutate func(*v1alpha1.FleetInferenceService)
		want   map[string]string
	}{
		{"server image for both", nil, map[string]string{"vllm-tpu": server, "vllm-gpu": server}},
		{"an image per accelerator", images, map[string]string{"vllm-tpu": tpuImg, "vllm-gpu": gpuImg}},
		{"one accelerator image, the other the server's", func(s *v1alpha1.FleetInferenceService) {
			s.Spec.Model.FallbackAccelerators[0].Image = gpuImg
		}, map[string]string{"vllm-tpu": server, "vllm-gpu": gpuImg}},
		{"override image beats accelerator images", both(images, inCluster(&v1alpha1.ClusterOverrides{Image: clusterImg})),
			map[string]string{"vllm-tpu": clusterImg, "vllm-gpu": clusterImg}},
		{"override accelerator image beats override image", both(images, inCluster(&v1alpha1.ClusterOverrides{
			Image:       clusterImg,
			Accelerator: &v1alpha1.AcceleratorSpec{Type: "tpu-v6e-slice", Count: 1, Topology: "1x1", Image: clusterAccelImg},
		})), map[string]string{"vllm": clusterAccelImg}},
		{"override accelerator without image takes override image", both(images, inCluster(&v1alpha1.ClusterOverrides{
			Image:       clusterImg,
			Accelerator: &v1alpha1.AcceleratorSpec{Type: "nvidia-l4", Count: 1},
		})), map[string]string{"vllm": clusterImg}},
		{"override accelerator image without override image", both(images, inCluster(&v1alpha1.ClusterOverrides{
			Accelerator: &v1alpha1.AcceleratorSpec{Type: "nvidia-l4", Count: 1, Image: clusterAccelImg},
		})), map[string]string{"vllm": clusterAccelImg}},
		{"another cluster's override does not apply", both(images, func(s *v1alpha1.FleetInferenceService) {
			s.Spec.Placement.ClusterSelector = nil
			s.Spec.Placement.Clusters = []v1alpha1.ClusterPlacement{{Name: "gke-west"}, {Name: "gke-east", Overrides: &v1alpha1.ClusterOverrides{Image: clusterImg}}}
		}), map[string]string{"vllm-tpu": tpuImg, "vllm-gpu": gpuImg}},
	}
	// The sample names an image per accelerator; each case starts from none.
	noImages := func(s *v1alpha1.FleetInferenceService) {
		s.Spec.Model.Accelerator.Image = ""
		s.Spec.Model.FallbackAccelerators[0].Image = ""
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mutate := noImages
			if tc.mutate != nil {
				mutate = both(noImages, tc.mutate)
			}
			cs, _ := containers(t, fungibleSample, mutate)
			got := map[string]string{}
			for n, c := range cs {
				got[n] = c.Image
			}
			if !mapsEqual(got, tc.want) {
				t.Errorf("images %v, want %v", got, tc.want)
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestCommandOverride(t *testing.T) {
	serviceCmd := []string{"/opt/serve", "--engine=vllm"}
	clusterCmd := []string{"vllm", "serve"}
	setCmd := func(s *v1alpha1.FleetInferenceService) { s.Spec.Model.Server.Command = serviceCmd }
	cases := []struct {
		name, sample string
		mutate       func(*v1alpha1.FleetInferenceService)
		want         []string
	}{
		{"service command on GPU", h100Sample, setCmd, serviceCmd},
		{"service command on TPU", tpuSample, setCmd, serviceCmd},
		{"cluster command replaces the service's", h100Sample, both(setCmd, inCluster(&v1alpha1.ClusterOverrides{Command: clusterCmd})), clusterCmd},
		{"cluster command without a service command", tpuSample, inCluster(&v1alpha1.ClusterOverrides{Command: clusterCmd}), clusterCmd},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := mustOne(t, tc.sample, tc.mutate)
			if !slices.Equal(c.Command, tc.want) {
				t.Errorf("command %q, want %q", c.Command, tc.want)
			}
			// The arguments stay a list, with no shell wrapper around them.
			if len(c.Args) < 2 || !strings.HasPrefix(c.Args[0], "--model=") || c.Args[1] != "--port=8000" {
				t.Errorf("args %q", c.Args)
			}
		})
	}

	t.Run("fungible pod execs the command", func(t *testing.T) {
		cs, _ := containers(t, fungibleSample, func(s *v1alpha1.FleetInferenceService) {
			s.Spec.Model.Server.Command = []string{"/opt/serve", "--engine=v llm"}
		})
		for _, name := range []string{"vllm-tpu", "vllm-gpu"} {
			script := cs[name].Command[2]
			if !strings.Contains(script, `exec /opt/serve '--engine=v llm' "$@"`) || strings.Contains(script, "vllm.entrypoints") || strings.Contains(script, "export PATH") {
				t.Errorf("%s script %q", name, script)
			}
		}
	})
}

// TestFungibleScriptPassesEveryArgument runs each fungible container's command line as the
// kubelet would (command, then args) with the hardware check forced true and the server
// replaced by printf: every argument, --model first, must reach the server.
func TestFungibleScriptPassesEveryArgument(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	cs, _ := containers(t, fungibleSample, func(s *v1alpha1.FleetInferenceService) {
		s.Spec.Model.Server.Command = []string{"printf", `%s\n`}
		s.Spec.Model.Server.Args = []string{"--max-model-len=8192", "--chat-template=a b"}
	})
	for _, name := range []string{"vllm-tpu", "vllm-gpu"} {
		c := cs[name]
		if len(c.Command) < 3 || c.Command[0] != "sh" || c.Command[1] != "-c" {
			t.Fatalf("%s command %q", name, c.Command)
		}
		line := append(slices.Clone(c.Command[1:]), c.Args...)
		line[1] = strings.Replace(line[1], "(ls /dev/nvidia0)", "(true)", 1)
		line[1] = strings.Replace(line[1], "(ls /dev/accel0 || ls /dev/vfio/0)", "(true)", 1)
		out, err := exec.Command(sh, line...).Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"); !slices.Equal(got, c.Args) {
			t.Errorf("%s: the server got %q, want %q", name, got, c.Args)
		}
	}
}

func TestFungibleGPUMountsNodeDriver(t *testing.T) {
	cs, pod := containers(t, fungibleSample, nil)
	mounted := func(c corev1.Container) bool {
		for _, m := range c.VolumeMounts {
			if m.Name == nvidiaVolume && m.MountPath == "/usr/local/nvidia" {
				return true
			}
		}
		return false
	}
	if !mounted(cs["vllm-gpu"]) || mounted(cs["vllm-tpu"]) {
		t.Errorf("driver mounted in gpu %v, tpu %v: want the GPU container only", mounted(cs["vllm-gpu"]), mounted(cs["vllm-tpu"]))
	}
	var vol *corev1.Volume
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == nvidiaVolume {
			vol = &pod.Volumes[i]
		}
	}
	if vol == nil || vol.HostPath == nil || vol.HostPath.Path != "/home/kubernetes/bin/nvidia" || *vol.HostPath.Type != corev1.HostPathDirectoryOrCreate {
		t.Errorf("driver volume %+v", vol)
	}
	// A pod that requests its GPU gets the driver from GKE's device plugin.
	_, pod = containers(t, h100Sample, nil)
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			t.Errorf("non-fungible pod mounts host path %s", v.HostPath.Path)
		}
	}
}

func TestProbeOverrides(t *testing.T) {
	probe := func(path string, threshold int32) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(8000)}}, FailureThreshold: threshold}
	}
	serviceProbes := func(p *v1alpha1.ProbesSpec) func(*v1alpha1.FleetInferenceService) {
		return func(s *v1alpha1.FleetInferenceService) { s.Spec.Model.Server.Probes = p }
	}
	type want struct{ startup, readiness, liveness string } // HTTP path, "derived" for /health with seed 002's thresholds
	cases := []struct {
		name   string
		mutate func(*v1alpha1.FleetInferenceService)
		want   want
	}{
		{"derived", nil, want{"derived", "derived", "derived"}},
		{"service readiness only", serviceProbes(&v1alpha1.ProbesSpec{Readiness: probe("/ready", 3)}), want{"derived", "/ready", "derived"}},
		{"service startup and liveness", serviceProbes(&v1alpha1.ProbesSpec{Startup: probe("/started", 60), Liveness: probe("/alive", 9)}), want{"/started", "derived", "/alive"}},
		{"cluster liveness merges with service readiness", both(serviceProbes(&v1alpha1.ProbesSpec{Readiness: probe("/ready", 3)}),
			inCluster(&v1alpha1.ClusterOverrides{Probes: &v1alpha1.ProbesSpec{Liveness: probe("/cluster-alive", 9)}})), want{"derived", "/ready", "/cluster-alive"}},
		{"cluster probe replaces the service's", both(serviceProbes(&v1alpha1.ProbesSpec{Startup: probe("/started", 60)}),
			inCluster(&v1alpha1.ClusterOverrides{Probes: &v1alpha1.ProbesSpec{Startup: probe("/cluster-started", 120)}})), want{"/cluster-started", "derived", "derived"}},
		{"cluster probes without service probes", inCluster(&v1alpha1.ClusterOverrides{Probes: &v1alpha1.ProbesSpec{Readiness: probe("/cluster-ready", 2)}}), want{"derived", "/cluster-ready", "derived"}},
	}
	derived := map[string]int32{"startup": 600, "readiness": 1, "liveness": 5}
	// The sample sets seed 000's readiness probe and startup budget; each case starts from none.
	noProbes := func(s *v1alpha1.FleetInferenceService) {
		s.Spec.Model.Server.Probes, s.Spec.Model.Server.StartupTimeout = nil, nil
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mutate := noProbes
			if tc.mutate != nil {
				mutate = both(noProbes, tc.mutate)
			}
			c := mustOne(t, tpuSample, mutate)
			for kind, got := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				w := map[string]string{"startup": tc.want.startup, "readiness": tc.want.readiness, "liveness": tc.want.liveness}[kind]
				switch {
				case got == nil || got.HTTPGet == nil:
					t.Errorf("%s probe missing", kind)
				case w == "derived" && (got.HTTPGet.Path != "/health" || got.HTTPGet.Port.String() != "http" || got.FailureThreshold != derived[kind]):
					t.Errorf("%s probe %s/%d, want the derived one", kind, got.HTTPGet.Path, got.FailureThreshold)
				case w != "derived" && got.HTTPGet.Path != w:
					t.Errorf("%s probe %s, want %s", kind, got.HTTPGet.Path, w)
				}
			}
		})
	}
}

func TestStartupTimeout(t *testing.T) {
	timeout := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
	cases := []struct {
		name      string
		service   *metav1.Duration
		cluster   *metav1.Duration
		probes    *v1alpha1.ProbesSpec
		threshold int32
	}{
		{"default 10m", nil, nil, nil, 600},
		{"15m for a 14B model on TPU", timeout(900 * time.Second), nil, nil, 900},
		{"rounded up to a whole period", timeout(90*time.Second + 500*time.Millisecond), nil, nil, 91},
		{"cluster replaces service", timeout(15 * time.Minute), timeout(20 * time.Minute), nil, 1200},
		{"cluster without service", nil, timeout(30 * time.Second), nil, 30},
		{"explicit startup probe ignores the timeout", timeout(15 * time.Minute), timeout(20 * time.Minute),
			&v1alpha1.ProbesSpec{Startup: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8000)}}, PeriodSeconds: 10, FailureThreshold: 7}}, 7},
		{"another probe keeps the timeout", timeout(900 * time.Second), nil, &v1alpha1.ProbesSpec{Readiness: &corev1.Probe{FailureThreshold: 2}}, 900},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := mustOne(t, tpuSample, func(s *v1alpha1.FleetInferenceService) {
				s.Spec.Model.Server.StartupTimeout = tc.service
				s.Spec.Model.Server.Probes = tc.probes
				if tc.cluster != nil {
					inCluster(&v1alpha1.ClusterOverrides{StartupTimeout: tc.cluster})(s)
				}
			})
			if got := c.StartupProbe.FailureThreshold; got != tc.threshold {
				t.Errorf("startup failureThreshold %d, want %d", got, tc.threshold)
			}
			if tc.probes == nil || tc.probes.Startup == nil {
				if c.StartupProbe.PeriodSeconds != 1 || c.StartupProbe.HTTPGet.Path != "/health" {
					t.Errorf("derived startup probe %+v", c.StartupProbe)
				}
			}
		})
	}
}
