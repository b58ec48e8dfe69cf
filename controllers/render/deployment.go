package render

import (
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/fleet"
)

// Shutdown and probe values of the vLLM Deployment in GKE's "Serve an LLM with GKE
// Inference Gateway" tutorial. vLLM stops accepting connections on SIGTERM, so the preStop
// sleep keeps it serving until the load balancers have taken it out of rotation (30 s, a
// p99 readiness propagation). The grace period is the worst-case drain of a request started
// just before SIGTERM (about 56 s for an 8B model at full batch), plus that sleep, plus a
// 50% buffer: (56 + 30) * 1.5 ≈ 130 s.
const (
	preStopSleepSeconds           = 30
	terminationGracePeriodSeconds = 130
	// probePeriodSeconds: vLLM's /health is cheap, so every probe runs each second; the
	// startup probe's failure threshold is the startup timeout counted in these periods.
	probePeriodSeconds = 1
	// LoraSyncerImage is the lora-adapter-syncer sidecar of the Inference Extension.
	LoraSyncerImage = "us-central1-docker.pkg.dev/k8s-staging-images/gateway-api-inference-extension/lora-syncer:main"
	loraConfigKey   = "configmap.yaml"
	loraMountPath   = "/config"
)

// vllmCommand starts vLLM's OpenAI server; set explicitly because the TPU image
// (vllm/vllm-tpu) has no entrypoint while the GPU image's entrypoint is this same command.
var vllmCommand = []string{"python3", "-m", "vllm.entrypoints.openai.api_server"}

// nvidiaEnvPrefix puts the NVIDIA driver GKE mounts at /usr/local/nvidia on the search
// paths: vLLM images after v0.8.5 no longer find it (vllm-project/vllm#18859).
const nvidiaEnvPrefix = "PATH=$PATH:/usr/local/nvidia/bin LD_LIBRARY_PATH=$LD_LIBRARY_PATH:/usr/local/nvidia/lib:/usr/local/nvidia/lib64"

// The node's NVIDIA driver as the GKE GPU/TPU fungibility recipe mounts it into a GPU
// container that requests no GPU (so the device plugin injects nothing): GKE installs the
// driver under /home/kubernetes/bin/nvidia, and containers expect it at /usr/local/nvidia.
const (
	nvidiaVolume    = "nvidia-driver"
	nvidiaHostPath  = "/home/kubernetes/bin/nvidia"
	nvidiaMountPath = "/usr/local/nvidia"
)

// LoraConfigMapName names the ConfigMap the lora-adapter-syncer watches.
func LoraConfigMapName(svc *v1alpha1.FleetInferenceService) string { return svc.Name + "-adapters" }

// ModelServer is the model spec in force in one cluster: spec.model with that cluster's
// placement overrides applied. An override's image replaces the image of every accelerator
// that did not come from the same override, so in that cluster overrides.image wins over
// accelerator images from spec.model, and overrides.accelerator.image wins over both.
func ModelServer(svc *v1alpha1.FleetInferenceService, cluster string) v1alpha1.ModelSpec {
	m := *svc.Spec.Model.DeepCopy()
	for _, c := range svc.Spec.Placement.Clusters {
		if c.Name != cluster || c.Overrides == nil {
			continue
		}
		o := c.Overrides.DeepCopy()
		if o.Image != "" {
			m.Server.Image = o.Image
			if m.Accelerator != nil {
				m.Accelerator.Image = ""
			}
			for i := range m.FallbackAccelerators {
				m.FallbackAccelerators[i].Image = ""
			}
		}
		if o.Accelerator != nil {
			m.Accelerator = o.Accelerator
			// A cluster that names its own accelerator runs it alone.
			m.FallbackAccelerators = nil
		}
		if o.Args != nil {
			m.Server.Args = o.Args
		}
		if o.Command != nil {
			m.Server.Command = o.Command
		}
		if p := o.Probes; p != nil {
			if m.Server.Probes == nil {
				m.Server.Probes = &v1alpha1.ProbesSpec{}
			}
			if p.Startup != nil {
				m.Server.Probes.Startup = p.Startup
			}
			if p.Readiness != nil {
				m.Server.Probes.Readiness = p.Readiness
			}
			if p.Liveness != nil {
				m.Server.Probes.Liveness = p.Liveness
			}
		}
		if o.StartupTimeout != nil {
			m.Server.StartupTimeout = o.StartupTimeout
		}
		m.Server.Env = mergeEnv(m.Server.Env, o.Env)
		if o.ComputeClass != nil {
			m.ComputeClass = *o.ComputeClass
		}
	}
	return m
}

// mergeEnv returns base with extra appended; a name in extra replaces the same name in base.
func mergeEnv(base, extra []corev1.EnvVar) []corev1.EnvVar {
	out := make([]corev1.EnvVar, 0, len(base)+len(extra))
	idx := map[string]int{}
	for _, e := range append(append([]corev1.EnvVar{}, base...), extra...) {
		if i, ok := idx[e.Name]; ok {
			out[i] = e
			continue
		}
		idx[e.Name] = len(out)
		out = append(out, e)
	}
	return out
}

// modelDeployment renders the vLLM Deployment.
func modelDeployment(svc *v1alpha1.FleetInferenceService, m v1alpha1.ModelSpec, replicas int32) *appsv1.Deployment {
	app := ModelLabels(svc)
	pod := corev1.PodSpec{
		EnableServiceLinks:            ptr.To(false),
		TerminationGracePeriodSeconds: ptr.To[int64](terminationGracePeriodSeconds),
		RestartPolicy:                 corev1.RestartPolicyAlways,
		Volumes: []corev1.Volume{
			{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "shm", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		},
	}
	accels := acceleratorsOf(m)
	fungible := len(accels) > 1
	for i, a := range accels {
		c := serverContainer(svc, m, a, fungible, i == 0)
		pod.Containers = append(pod.Containers, c)
	}
	pod.NodeSelector, pod.Tolerations = placementOf(m, accels)
	if fungible && hasGPU(accels) {
		pod.Volumes = append(pod.Volumes, corev1.Volume{Name: nvidiaVolume, VolumeSource: corev1.VolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: nvidiaHostPath, Type: ptr.To(corev1.HostPathDirectoryOrCreate)},
		}})
	}
	if len(m.LoraAdapters) > 0 {
		pod.Volumes = append(pod.Volumes,
			corev1.Volume{Name: "adapters", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			corev1.Volume{Name: "config-volume", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: LoraConfigMapName(svc)},
			}}},
		)
		pod.Containers = append(pod.Containers, corev1.Container{
			Name:            "lora-adapter-syncer",
			Image:           LoraSyncerImage,
			ImagePullPolicy: corev1.PullAlways,
			Env:             []corev1.EnvVar{{Name: "DYNAMIC_LORA_ROLLOUT_CONFIG", Value: loraMountPath + "/" + loraConfigKey}},
			// No subPath: ConfigMap updates do not reach subPath mounts.
			VolumeMounts: []corev1.VolumeMount{{Name: "config-volume", MountPath: loraMountPath}},
		})
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace, Labels: withLabels(svc, app)},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: app},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: app}, Spec: pod},
		},
	}
}

// acceleratorsOf lists the accelerators a replica may run on: the primary one, then the
// compute class's fallbacks. Empty for a CPU-only server.
func acceleratorsOf(m v1alpha1.ModelSpec) []*v1alpha1.AcceleratorSpec {
	if m.Accelerator == nil {
		return []*v1alpha1.AcceleratorSpec{nil}
	}
	out := []*v1alpha1.AcceleratorSpec{m.Accelerator}
	for i := range m.FallbackAccelerators {
		out = append(out, &m.FallbackAccelerators[i])
	}
	return out
}

func hasGPU(accels []*v1alpha1.AcceleratorSpec) bool {
	for _, a := range accels {
		if kindOf(a) == "gpu" {
			return true
		}
	}
	return false
}

func kindOf(a *v1alpha1.AcceleratorSpec) string {
	switch {
	case a == nil:
		return "cpu"
	case a.IsTPU():
		return "tpu"
	default:
		return "gpu"
	}
}

// serverContainer is one vLLM container. In a fungible pod (a compute class with fallback
// accelerators) there is one per accelerator kind: each starts the server only
// when its hardware is present and idles otherwise, and since a pod cannot request both a
// GPU and a TPU, they request none and run privileged to see the node's devices.
func serverContainer(svc *v1alpha1.FleetInferenceService, m v1alpha1.ModelSpec, a *v1alpha1.AcceleratorSpec, fungible, first bool) corev1.Container {
	srv := m.Server
	args := []string{"--model=" + m.Name, fmt.Sprintf("--port=%d", srv.Port)}
	args = append(args, srv.Args...)
	if len(m.LoraAdapters) > 0 {
		args = append(args, "--enable-lora")
		if !hasFlag(srv.Args, "--max-loras") {
			args = append(args, fmt.Sprintf("--max-loras=%d", len(m.LoraAdapters)))
		}
	}
	kind := kindOf(a)
	var env []corev1.EnvVar
	if kind == "gpu" {
		// vLLM before 0.8.3 turns its V1 engine off when LoRA is enabled; force it on.
		env = append(env, corev1.EnvVar{Name: "VLLM_USE_V1", Value: "1"})
	}
	env = append(env, corev1.EnvVar{Name: "PORT", Value: fmt.Sprint(srv.Port)})
	if ref := srv.HuggingFaceTokenSecretRef; ref != nil {
		env = append(env, corev1.EnvVar{Name: "HUGGING_FACE_HUB_TOKEN", ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: TokenSecretName(svc)}, Key: ref.Key},
		}})
	}
	if len(m.LoraAdapters) > 0 {
		env = append(env, corev1.EnvVar{Name: "VLLM_ALLOW_RUNTIME_LORA_UPDATING", Value: "true"})
	}
	if kind == "tpu" {
		env = append(env, corev1.EnvVar{Name: "PJRT_DEVICE", Value: "TPU"})
	}
	env = mergeEnv(env, srv.Env)

	liveness, readiness, startup := serverProbes(srv)
	c := corev1.Container{
		Name:            "vllm",
		Image:           srv.Image,
		ImagePullPolicy: corev1.PullAlways,
		Env:             env,
		Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
			Sleep: &corev1.SleepAction{Seconds: preStopSleepSeconds},
		}},
		LivenessProbe:  liveness,
		ReadinessProbe: readiness,
		StartupProbe:   startup,
		Resources:      *srv.Resources.DeepCopy(),
		VolumeMounts: []corev1.VolumeMount{
			{Name: "data", MountPath: "/data"},
			{Name: "shm", MountPath: "/dev/shm"},
		},
	}
	if a != nil && a.Image != "" {
		c.Image = a.Image
	}
	if first {
		// The pod shares one network namespace: one container declares the port, and the
		// probes of every container reach whichever server runs.
		c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: srv.Port, Protocol: corev1.ProtocolTCP}}
	}
	if len(m.LoraAdapters) > 0 {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "adapters", MountPath: "/adapters"})
	}
	if !fungible {
		c.Command, c.Args = serverCommand(kind, srv.Command, args)
		if name, qty := acceleratorResource(a); name != "" {
			if c.Resources.Limits == nil {
				c.Resources.Limits = corev1.ResourceList{}
			}
			if c.Resources.Requests == nil {
				c.Resources.Requests = corev1.ResourceList{}
			}
			c.Resources.Limits[name] = qty
			c.Resources.Requests[name] = qty
		}
		return c
	}
	c.Name = "vllm-" + kind
	c.SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	// sh -c takes the word after the script as $0, so c.Name stands there and "$@" in the
	// script is exactly the server's arguments.
	c.Command = []string{"sh", "-c", fungibleScript(kind, srv.Command), c.Name}
	c.Args = args
	if kind == "gpu" {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: nvidiaVolume, MountPath: nvidiaMountPath})
	}
	return c
}

// serverCommand is the command and arguments of a container that runs alone in its pod:
// the user's command with the arguments, else on GPUs vLLM in a shell that adds the NVIDIA
// driver paths (nvidiaEnvPrefix), else vLLM.
func serverCommand(kind string, command, args []string) ([]string, []string) {
	switch {
	case len(command) > 0:
		return append([]string{}, command...), args
	case kind == "gpu":
		line := []string{nvidiaEnvPrefix}
		for _, w := range append(append([]string{}, vllmCommand...), args...) {
			line = append(line, shellQuote(w))
		}
		return []string{"sh", "-c"}, []string{strings.Join(line, " ")}
	default:
		return append([]string{}, vllmCommand...), args
	}
}

// fungibleScript runs the server with the script's arguments ("$@") when the node has this
// container's hardware, and sleeps otherwise (the other container serves). The server is
// command when set, else vLLM, on GPUs with the driver paths of nvidiaEnvPrefix.
func fungibleScript(kind string, command []string) string {
	probe := "ls /dev/nvidia0"
	if kind == "tpu" {
		probe = "ls /dev/accel0 || ls /dev/vfio/0"
	}
	run := command
	if len(run) == 0 {
		run = vllmCommand
	}
	words := make([]string, 0, len(run))
	for _, w := range run {
		words = append(words, shellQuote(w))
	}
	exec := "exec " + strings.Join(words, " ") + ` "$@"`
	if len(command) == 0 && kind == "gpu" {
		exec = "export " + nvidiaEnvPrefix + "; " + exec
	}
	return fmt.Sprintf(`if (%s) >/dev/null 2>&1; then %s; else echo "no %s on this node, idling"; exec sleep infinity; fi`,
		probe, exec, strings.ToUpper(kind))
}

// shellQuote returns s as one POSIX shell word: unchanged when it holds only characters
// the shell never interprets, else in single quotes.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	if strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// serverProbes probe vLLM's /health, which answers only once the model is loaded. A
// liveness restart reloads the model, so it takes 5 failures; one readiness failure takes
// the replica out of rotation. Each is replaced by model.server.probes when set; the startup
// probe allows model.server.startupTimeout (default 10m) to load the model.
func serverProbes(srv v1alpha1.ServerSpec) (liveness, readiness, startup *corev1.Probe) {
	health := func() *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: "/health", Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP,
		}}, PeriodSeconds: probePeriodSeconds, SuccessThreshold: 1, TimeoutSeconds: 1}
	}
	liveness, readiness, startup = health(), health(), health()
	liveness.FailureThreshold = 5
	readiness.FailureThreshold = 1
	timeout := v1alpha1.DefaultStartupTimeout
	if srv.StartupTimeout != nil {
		timeout = srv.StartupTimeout.Duration
	}
	period := probePeriodSeconds * time.Second
	startup.FailureThreshold = int32((timeout + period - 1) / period)
	startup.InitialDelaySeconds = 2
	startup.TimeoutSeconds = 0
	if p := srv.Probes; p != nil {
		if p.Liveness != nil {
			liveness = p.Liveness.DeepCopy()
		}
		if p.Readiness != nil {
			readiness = p.Readiness.DeepCopy()
		}
		if p.Startup != nil {
			startup = p.Startup.DeepCopy()
		}
	}
	return liveness, readiness, startup
}

func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

func acceleratorResource(a *v1alpha1.AcceleratorSpec) (corev1.ResourceName, resource.Quantity) {
	switch kindOf(a) {
	case "gpu":
		return fleet.ResourceGPU, *resource.NewQuantity(int64(a.Count), resource.DecimalSI)
	case "tpu":
		return fleet.ResourceTPU, *resource.NewQuantity(int64(a.Count), resource.DecimalSI)
	}
	return "", resource.Quantity{}
}

// placementOf returns the node selector and tolerations that put a replica on its
// accelerator: GKE's accelerator node labels, or only the compute class label when a
// compute class chooses between several accelerators (a selector on one accelerator would
// rule out the others).
func placementOf(m v1alpha1.ModelSpec, accels []*v1alpha1.AcceleratorSpec) (map[string]string, []corev1.Toleration) {
	sel := map[string]string{}
	var tol []corev1.Toleration
	seen := map[string]bool{}
	for _, a := range accels {
		k := kindOf(a)
		if seen[k] {
			continue
		}
		seen[k] = true
		switch k {
		case "gpu":
			tol = append(tol, corev1.Toleration{Key: string(fleet.ResourceGPU), Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
		case "tpu":
			tol = append(tol, corev1.Toleration{Key: string(fleet.ResourceTPU), Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
		}
	}
	if len(accels) == 1 && accels[0] != nil {
		a := accels[0]
		if a.IsTPU() {
			sel[fleet.LabelGKETPUAccelerator] = a.Type
			sel[fleet.LabelGKETPUTopology] = a.Topology
		} else {
			sel[fleet.LabelGKEAccelerator] = a.Type
		}
	}
	if m.ComputeClass != "" {
		sel[fleet.LabelComputeClass] = m.ComputeClass
		tol = append(tol, corev1.Toleration{Key: fleet.LabelComputeClass, Operator: corev1.TolerationOpEqual, Value: m.ComputeClass, Effect: corev1.TaintEffectNoSchedule})
	}
	sort.Slice(tol, func(i, j int) bool { return tol[i].Key < tol[j].Key })
	if len(sel) == 0 {
		sel = nil
	}
	return sel, tol
}

// loraConfigMap is the lora-adapter-syncer's configuration: the adapters it keeps loaded
// in vLLM.
func loraConfigMap(svc *v1alpha1.FleetInferenceService, m v1alpha1.ModelSpec) (*corev1.ConfigMap, error) {
	type model struct {
		ID     string `json:"id"`
		Source string `json:"source"`
	}
	cfg := map[string]any{"vLLMLoRAConfig": map[string]any{
		"name":             svc.Name,
		"port":             m.Server.Port,
		"defaultBaseModel": m.Name,
		"ensureExist": map[string]any{"models": func() []model {
			out := make([]model, 0, len(m.LoraAdapters))
			for _, l := range m.LoraAdapters {
				out = append(out, model{ID: l.ID, Source: l.Source})
			}
			return out
		}()},
	}}
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("lora config: %w", err)
	}
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: LoraConfigMapName(svc), Namespace: svc.Namespace, Labels: withLabels(svc, map[string]string{"app": svc.Name})},
		Data:       map[string]string{loraConfigKey: string(raw)},
	}, nil
}
