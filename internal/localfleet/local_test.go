package localfleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/repo"
	"github.com/inferfleet/inferfleet/internal/testenv"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// requireBins fails (never skips) when the control-plane binaries have not been built.
func requireBins(t *testing.T) {
	t.Helper()
	dir, err := resolveBinDir("")
	if err == nil {
		_, err = findBinaries(dir, []string{Etcd, KubeAPIServer, KubeControllerManager, KubeScheduler, Kwok})
	}
	if err != nil {
		t.Fatalf("%v\n(run `make bins` in the repository root first)", err)
	}
}

// testWriter sends the fleet's progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func TestLocalFleet(t *testing.T) {
	requireBins(t)
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Model servers (pods that request an accelerator) get the test host's address, where a
	// fake vLLM answers through the member API server's pod proxy.
	host := testenv.TestHost(t)
	l := host.Listen(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "vllm:num_requests_waiting 3 %s\n", r.URL.Path)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	port := l.Addr().(*net.TCPAddr).Port

	began := time.Now()
	member := ClusterSpec{
		Name:   "gke-west",
		Region: "europe-west3",
		Labels: map[string]string{"tier": "gpu"},
		Nodes:  GPUNodes("europe-west3", "nvidia-h100-80gb", 1, 8),
	}
	f, err := Start(ctx, Options{
		Dir:     t.TempDir(),
		Members: []ClusterSpec{member},
		// third-party also holds test data that is not CRDs: it must be skipped.
		HubCRDDirs:    []string{filepath.Join(root, "config/crd/bases")},
		MemberCRDDirs: []string{filepath.Join(root, "config/crd/third-party")},
		Log:           testWriter{t},
		ModelServerIP: host.IP,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fleet up in %s", time.Since(began).Round(10*time.Millisecond))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = f.Stop()
		}
	})
	m := f.Member("gke-west")
	if f.Hub.Name != DefaultHubName || m == nil {
		t.Fatalf("clusters: hub %q, member %v", f.Hub.Name, m)
	}
	for _, c := range f.Clusters() {
		if _, err := clientcmd.LoadFromFile(c.KubeconfigPath); err != nil {
			t.Errorf("kubeconfig of %s: %v", c.Name, err)
		}
	}

	// Registration: the member's Secret in the hub, labelled, with a kubeconfig that reaches it.
	hub := kubernetes.NewForConfigOrDie(f.Hub.RESTConfig())
	sec, err := hub.CoreV1().Secrets(fleet.RegistrationNamespace).Get(ctx, "gke-west", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("registration secret: %v", err)
	}
	for k, v := range map[string]string{fleet.KubeconfigLabel: "true", fleet.RegionLabel: "europe-west3", "tier": "gpu"} {
		if sec.Labels[k] != v {
			t.Errorf("secret label %s = %q, want %q (labels %v)", k, sec.Labels[k], v, sec.Labels)
		}
	}
	viaSecret, err := clientcmd.RESTConfigFromKubeConfig(sec.Data[fleet.KubeconfigKey])
	if err != nil {
		t.Fatalf("kubeconfig in secret: %v", err)
	}
	nodes, err := kubernetes.NewForConfigOrDie(viaSecret).CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list nodes through the registered kubeconfig: %v", err)
	}
	if len(nodes.Items) != 1 {
		t.Fatalf("nodes through registered kubeconfig: %d, want 1", len(nodes.Items))
	}

	// CRDs: hub got bases, member got third-party.
	if _, err := hub.Discovery().ServerResourcesForGroupVersion("fleet.inferfleet.dev/v1alpha1"); err != nil {
		t.Errorf("hub CRDs: %v", err)
	}

	// The GPU node is Ready with its GPUs allocatable.
	mc := kubernetes.NewForConfigOrDie(m.RESTConfig())
	node, err := mc.CoreV1().Nodes().Get(ctx, "nvidia-h100-80gb-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !nodeReady(node) {
		t.Errorf("node not Ready: %+v", node.Status.Conditions)
	}
	if q := node.Status.Allocatable[ResourceGPU]; q.Value() != 8 {
		t.Errorf("allocatable nvidia.com/gpu = %s, want 8", q.String())
	}
	if node.Labels[LabelGKEAccelerator] != "nvidia-h100-80gb" || node.Labels[LabelRegion] != "europe-west3" {
		t.Errorf("node labels: %v", node.Labels)
	}

	// A GPU Deployment is scheduled onto the fake node and turns Ready.
	deployBegan := time.Now()
	dep := gpuDeployment("vllm", 2)
	if _, err := mc.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "deployment readyReplicas=2", func() (bool, error) {
		d, err := mc.AppsV1().Deployments("default").Get(ctx, "vllm", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.ReadyReplicas == 2, fmt.Errorf("readyReplicas=%d", d.Status.ReadyReplicas)
	})
	t.Logf("deployment ready in %s", time.Since(deployBegan).Round(10*time.Millisecond))

	// The GPU pods run at the model-server address, which the pod proxy reaches; a pod
	// without an accelerator keeps an address of kwok's pod range.
	gpuPods, err := mc.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=vllm"})
	if err != nil || len(gpuPods.Items) != 2 {
		t.Fatalf("GPU pods: %v (%d)", err, len(gpuPods.Items))
	}
	for _, p := range gpuPods.Items {
		if p.Status.PodIP != host.IP || len(p.Status.PodIPs) != 1 || p.Status.PodIPs[0].IP != host.IP {
			t.Errorf("GPU pod %s at %q %v, want the model-server address %s", p.Name, p.Status.PodIP, p.Status.PodIPs, host.IP)
		}
	}
	body, err := mc.CoreV1().Pods("default").ProxyGet("http", gpuPods.Items[0].Name, strconv.Itoa(port), "metrics", nil).DoRaw(ctx)
	if err != nil || string(body) != "vllm:num_requests_waiting 3 /metrics\n" {
		t.Errorf("GPU pod's /metrics through the pod proxy: %q, %v", body, err)
	}
	plain := gpuDeployment("plain", 1)
	plain.Spec.Template.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
	if _, err := mc.AppsV1().Deployments("default").Create(ctx, plain, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "a pod without an accelerator running in kwok's pod range", func() (bool, error) {
		ps, err := mc.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=plain"})
		if err != nil || len(ps.Items) != 1 {
			return false, fmt.Errorf("pods %v (%v)", ps, err)
		}
		ip := ps.Items[0].Status.PodIP
		return ip != "" && strings.HasPrefix(ip, "10.244."), fmt.Errorf("pod IP %q", ip)
	})

	// A running pod marked not ready, as the node lifecycle controller does when a node's lease
	// is late, is ready again at the next "kubelet" status sync, as with a real kubelet.
	pods, err := mc.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=vllm"})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("pods: %v (%d)", err, len(pods.Items))
	}
	pod := pods.Items[0]
	for i, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			pod.Status.Conditions[i].Status = corev1.ConditionFalse
			pod.Status.Conditions[i].Reason = "NodeNotReady"
		}
	}
	if _, err := mc.CoreV1().Pods("default").UpdateStatus(ctx, &pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "pod ready again", func() (bool, error) {
		p, err := mc.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				return c.Status == corev1.ConditionTrue && p.Status.Phase == corev1.PodRunning, fmt.Errorf("ready %s, phase %s", c.Status, p.Status.Phase)
			}
		}
		return false, errors.New("no Ready condition")
	})
	waitFor(ctx, t, "deployment readyReplicas=2 again", func() (bool, error) {
		d, err := mc.AppsV1().Deployments("default").Get(ctx, "vllm", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.ReadyReplicas == 2, fmt.Errorf("readyReplicas=%d", d.Status.ReadyReplicas)
	})

	// Region loss: the member's API server dies; the old client fails, then works again with
	// the same rest.Config (same CA) once the API server is back.
	killBegan := time.Now()
	if err := m.StopAPIServer(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if m.APIServerRunning() {
		t.Fatal("APIServerRunning after StopAPIServer")
	}
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	_, err = mc.CoreV1().Nodes().List(short, metav1.ListOptions{})
	cancelShort()
	if err == nil {
		t.Fatal("request succeeded with the API server killed")
	}
	t.Logf("killed in %s; request fails: %v", time.Since(killBegan).Round(10*time.Millisecond), err)
	restartBegan := time.Now()
	if err := m.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted in %s", time.Since(restartBegan).Round(10*time.Millisecond))
	if !m.APIServerRunning() {
		t.Fatal("APIServerRunning false after StartAPIServer")
	}
	if _, err := mc.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("old client after restart: %v", err)
	}
	d, err := mc.AppsV1().Deployments("default").Get(ctx, "vllm", metav1.GetOptions{})
	if err != nil || d.Status.ReadyReplicas != 2 {
		t.Fatalf("deployment after restart: %v, readyReplicas=%d", err, d.Status.ReadyReplicas)
	}
	// A graceful stop and start works the same way.
	termBegan := time.Now()
	if err := m.StopAPIServer(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := m.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("old client after SIGTERM and restart: %v", err)
	}
	t.Logf("SIGTERM + restart in %s", time.Since(termBegan).Round(10*time.Millisecond))

	// Stop leaves no process behind.
	st, err := ReadState(f.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var pids []ProcessState
	for _, c := range append([]ClusterState{st.Hub}, st.Members...) {
		pids = append(pids, c.Processes...)
	}
	if len(pids) != 7 { // hub: etcd, apiserver; member: + kcm, scheduler, kwok
		t.Errorf("fleet.json lists %d processes, want 7: %+v", len(pids), pids)
	}
	stopBegan := time.Now()
	if err := f.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	t.Logf("stopped in %s", time.Since(stopBegan).Round(10*time.Millisecond))
	for _, p := range pids {
		if err := syscall.Kill(p.PID, 0); err != syscall.ESRCH {
			t.Errorf("%s (pid %d) still exists after Stop: %v", p.Component, p.PID, err)
		}
	}
}

// TestStopFromState stops a detached hub from its fleet.json, as `fleetctl down` does.
func TestStopFromState(t *testing.T) {
	requireBins(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	f, err := Start(ctx, Options{Dir: dir, Detach: true, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Stop() })
	st, err := ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Detached || len(st.Hub.Processes) != 2 {
		t.Fatalf("state: %+v", st)
	}
	if err := StopFromState(dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Hub.Processes {
		if pidRunning(p.PID, p.Binary) {
			t.Errorf("%s (pid %d) still running", p.Component, p.PID)
		}
	}
	if st, err = ReadState(dir); err != nil || len(st.Hub.Processes) != 0 {
		t.Errorf("state after stop: %+v, %v", st, err)
	}
	if _, err := os.Stat(f.Hub.KubeconfigPath); err != nil {
		t.Errorf("kubeconfig removed: %v", err)
	}
}

// TestStartFailureShowsLog checks that a component failing at start-up is reported with the
// tail of its log, and that what did start is stopped again.
func TestStartFailureShowsLog(t *testing.T) {
	bin := t.TempDir()
	scripts := map[string]string{
		Etcd:          "#!/bin/sh\nexec sleep 60\n",
		KubeAPIServer: "#!/bin/sh\necho 'Error: invalid flag --frobnicate'\nexit 3\n",
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	_, err := Start(ctx, Options{Dir: dir, BinDir: bin})
	if err == nil {
		t.Fatal("Start succeeded with a failing kube-apiserver")
	}
	t.Logf("Start failed as expected:\n%v", err)
	for _, want := range []string{"start hub kube-apiserver", "exit status 3", "invalid flag --frobnicate", "hub-kube-apiserver.log"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	st, rerr := ReadState(dir)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if len(st.Hub.Processes) != 0 {
		t.Errorf("processes left after a failed Start: %+v", st.Hub.Processes)
	}
}

func gpuDeployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{LabelGKEAccelerator: "nvidia-h100-80gb"},
					Containers: []corev1.Container{{
						Name:  "server",
						Image: "vllm/vllm-openai:latest",
						Resources: corev1.ResourceRequirements{
							Limits: corev1.ResourceList{ResourceGPU: resource.MustParse("1")},
						},
					}},
				},
			},
		},
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitFor polls cond until it is true; the error it returns while false explains the wait.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	for {
		ok, err := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s: %v", what, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestModelServerStage: the model servers' stage is kwok's pod-ready for accelerator pods
// and endpoint pickers at the given address, and only a usable address is taken.
func TestModelServerStage(t *testing.T) {
	raw, err := modelServerStage("10.1.2.6")
	if err != nil {
		t.Fatal(err)
	}
	got := string(raw)
	for _, want := range []string{"name: pod-ready-model-server", "weight: 1", `podIP: "10.1.2.6"`, `- ip: "10.1.2.6"`, `has("nvidia.com/gpu")`, `has("google.com/tpu")`, `has("inferencepool")`, "phase: Running", "initContainerStatuses"} {
		if !strings.Contains(got, want) {
			t.Errorf("stage lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "PodIPsWith") {
		t.Errorf("stage still allocates pod IPs:\n%s", got)
	}
	all, err := kwokStages("10.1.2.6")
	if err != nil || !strings.Contains(string(all), "name: pod-ready-model-server") || !strings.Contains(string(all), "name: pod-ready\n") {
		t.Errorf("kwok stages with a model-server address lack one of the pod-ready stages (%v)", err)
	}
	if plain, _ := kwokStages(""); strings.Contains(string(plain), "pod-ready-model-server") {
		t.Error("kwok stages without a model-server address hold the model servers' stage")
	}
	for _, bad := range []string{"", "127.0.0.1", "::1", "not-an-ip"} {
		if _, err := modelServerStage(bad); err == nil {
			t.Errorf("modelServerStage(%q) accepted", bad)
		}
	}
}
