package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/e2e/framework"
)

// syncBuffer is a bytes.Buffer a command writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fleetctl runs the CLI in-process and returns what it printed and its error.
func fleetctl(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := newRootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

// hubKubeconfig writes a kubeconfig of env with contexts "prod" (namespace prod) and
// "plain" (no namespace), current context prod.
func hubKubeconfig(t *testing.T, env *framework.Env) string {
	t.Helper()
	raw, err := framework.Kubeconfig(env.Config, "hub")
	if err != nil {
		t.Fatal(err)
	}
	kc, err := clientcmd.Load(raw)
	if err != nil {
		t.Fatal(err)
	}
	base := kc.Contexts[kc.CurrentContext]
	prod, plain := base.DeepCopy(), base.DeepCopy()
	prod.Namespace = "prod"
	kc.Contexts = map[string]*clientcmdapi.Context{"prod": prod, "plain": plain}
	kc.CurrentContext = "prod"
	b, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	return writeTemp(t, "hub.kubeconfig", b)
}

// writeTemp writes data to a file of that name in a new temporary folder.
func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sampleService is the two-region sample.
func sampleService(t *testing.T) *v1alpha1.FleetInferenceService {
	t.Helper()
	raw, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	svc := &v1alpha1.FleetInferenceService{}
	if err := yaml.UnmarshalStrict(raw, svc); err != nil {
		t.Fatal(err)
	}
	return svc
}

// createService creates the sample service as namespace/name.
func createService(t *testing.T, c client.Client, namespace, name string) *v1alpha1.FleetInferenceService {
	t.Helper()
	svc := sampleService(t)
	svc.Namespace, svc.Name = namespace, name
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := c.Create(context.Background(), ns); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	if err := c.Create(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	return svc
}

// TestKubectlConventions runs fleetctl against a real API server with kubectl's flags:
// the namespace from -n or the context, -A, every -o, --as, watch, version, and bad input.
func TestKubectlConventions(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	env := framework.Start(t, framework.CRDs())
	ctx := context.Background()
	kc := hubKubeconfig(t, env)
	llama := createService(t, env.Client, "prod", "llama")
	createService(t, env.Client, "default", "mistral")
	if err := framework.RegisterMember(ctx, env.Client, "gke-west", "europe-west3", map[string]string{"tier": "gpu"},
		[]byte("apiVersion: v1\nkind: Config\nclusters: [{name: w, cluster: {server: 'https://west.test:6443'}}]\ncontexts: [{name: w, context: {cluster: w}}]\ncurrent-context: w\n")); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := fleetctl(ctx, append(args, "--kubeconfig", kc)...)
		if err != nil {
			t.Fatalf("fleetctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	fails := func(want string, args ...string) {
		t.Helper()
		out, err := fleetctl(ctx, args...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("fleetctl %s: err %v, want one naming %q\n%s", strings.Join(args, " "), err, want, out)
		}
	}

	// The namespace: the context's (prod), -n, -A; NAME alone is in that namespace.
	if out := run("status"); !strings.Contains(out, "prod/llama ") || strings.Contains(out, "mistral") {
		t.Errorf("status in the context's namespace prod:\n%s", out)
	}
	if out := run("status", "--context", "plain"); !strings.Contains(out, "default/mistral ") || strings.Contains(out, "llama") {
		t.Errorf("status in a context without a namespace (default):\n%s", out)
	}
	if out := run("status", "-n", "default"); !strings.Contains(out, "default/mistral ") || strings.Contains(out, "llama") {
		t.Errorf("status -n default:\n%s", out)
	}
	if out := run("status", "-A"); !strings.Contains(out, "default/mistral ") || !strings.Contains(out, "prod/llama ") {
		t.Errorf("status -A:\n%s", out)
	}
	if out := run("status", "llama"); !strings.HasPrefix(out, "prod/llama ") {
		t.Errorf("status llama (context namespace prod):\n%s", out)
	}
	if out := run("status", "-n", "empty"); out != "No FleetInferenceServices found in empty namespace.\n" {
		t.Errorf("status -n empty: %q", out)
	}
	fails("across all namespaces", "status", "-A", "llama", "--kubeconfig", kc)
	fails("-n says default", "status", "prod/llama", "-n", "default", "--kubeconfig", kc)
	fails(`"mistral" not found`, "status", "mistral", "--kubeconfig", kc)

	// Every -o.
	var one v1alpha1.FleetInferenceService
	if err := json.Unmarshal([]byte(run("status", "llama", "-o", "json")), &one); err != nil || one.Kind != "FleetInferenceService" || one.Name != "llama" || one.ManagedFields != nil {
		t.Errorf("status llama -o json: %v %s %s (managedFields %d)", err, one.Kind, one.Name, len(one.ManagedFields))
	}
	var list struct {
		Kind  string
		Items []v1alpha1.FleetInferenceService
	}
	if err := yaml.Unmarshal([]byte(run("status", "-A", "-o", "yaml")), &list); err != nil || list.Kind != "List" || len(list.Items) != 2 || list.Items[0].Kind != "FleetInferenceService" {
		t.Errorf("status -A -o yaml: %v %+v", err, list.Kind)
	}
	if out := run("status", "-A", "-o", "name"); out != "fleetinferenceservice.fleet.inferfleet.dev/mistral\nfleetinferenceservice.fleet.inferfleet.dev/llama\n" {
		t.Errorf("status -A -o name: %q", out)
	}
	if out := run("status", "-A", "-o", "jsonpath={.items[*].metadata.namespace}"); out != "default prod" {
		t.Errorf("-o jsonpath: %q", out)
	}
	if out := run("status", "llama", "-o", "go-template={{.spec.replicas}}"); out != "6" {
		t.Errorf("-o go-template: %q", out)
	}
	llama.Status.Clusters = []v1alpha1.ClusterStatus{{Name: "gke-west", Region: "europe-west3", DesiredReplicas: 3}}
	llama.Status.Placement = &v1alpha1.PlacementStatus{Clusters: []v1alpha1.ClusterDecision{{Name: "gke-west", Replicas: 3, Reason: v1alpha1.PlacementPlaced}}}
	if err := env.Client.Status().Update(ctx, llama); err != nil {
		t.Fatal(err)
	}
	if out := run("status", "llama", "-o", "wide"); !regexp.MustCompile(`PLACEMENT +PLACED SINCE +MESSAGE\n +gke-west .* Placed `).MatchString(out) {
		t.Errorf("status -o wide lacks the placement column:\n%s", out)
	}
	fails("unable to match a printer", "status", "-o", "xml", "--kubeconfig", filepath.Join(t.TempDir(), "never-read"))

	// clusters: every member as a ClusterProfile.
	var profile map[string]any
	if err := yaml.Unmarshal([]byte(run("clusters", "gke-west", "-o", "yaml")), &profile); err != nil ||
		profile["apiVersion"] != "multicluster.x-k8s.io/v1alpha1" || profile["kind"] != "ClusterProfile" {
		t.Errorf("clusters gke-west -o yaml: %v %v", err, profile)
	}
	if got := run("clusters", "-o", "jsonpath={.items[0].status.accessProviders[0].cluster.server} {.items[0].spec.clusterManager.name} {.items[0].metadata.labels.tier}"); got != "https://west.test:6443 kubeconfig gpu" {
		t.Errorf("clusters -o jsonpath: %q", got)
	}
	if out := run("clusters", "-o", "name"); out != "clusterprofile.multicluster.x-k8s.io/gke-west\n" {
		t.Errorf("clusters -o name: %q", out)
	}
	if out := run("clusters", "-o", "wide"); !regexp.MustCompile(`SERVER +CORDON\ngke-west .*https://west.test:6443 +-`).MatchString(out) {
		t.Errorf("clusters -o wide:\n%s", out)
	}
	fails(`member cluster "nowhere" not found`, "clusters", "nowhere", "--kubeconfig", kc)

	// --as impersonates, as kubectl does: a user with no rights is refused by the hub.
	fails(`User "nobody" cannot list resource "fleetinferenceservices"`, "status", "--as", "nobody", "--kubeconfig", kc)
	fails("Invalid timeout value", "status", "--request-timeout", "soon", "--kubeconfig", kc)

	// Bad kubeconfigs, and a hub that does not answer: each error names what was used.
	missing := filepath.Join(t.TempDir(), "missing.kubeconfig")
	fails(missing, "status", "--kubeconfig", missing)
	fails("context was not found for specified context: absent", "status", "--kubeconfig", kc, "--context", "absent")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	deadKC := writeServerKubeconfig(t, "dead", "https://"+dead)
	out, err := fleetctl(ctx, "status", "--kubeconfig", deadKC, "--request-timeout", "5s")
	if err == nil || !strings.Contains(err.Error(), `cannot reach the hub (context "dead", server https://`+dead+", kubeconfig "+deadKC+")") {
		t.Errorf("unreachable hub: %v\n%s", err, out)
	}

	// version: the build, and the hub's Kubernetes version.
	var v versions
	if err := json.Unmarshal([]byte(run("version", "-o", "json")), &v); err != nil || v.ClientVersion.Version == "" || v.ClientVersion.GoVersion == "" || !strings.HasPrefix(v.HubKubernetesVersion, "v") {
		t.Errorf("version -o json: %v %+v", err, v)
	}
	if out, err := fleetctl(ctx, "version", "--client", "--kubeconfig", deadKC); err != nil || !strings.HasPrefix(out, "Client Version: ") || strings.Contains(out, "Hub") {
		t.Errorf("version --client must not contact the hub: %v %q", err, out)
	}

	// status -w: the listing, then each change as the watch delivers it.
	wctx, stop := context.WithCancel(ctx)
	var buf syncBuffer
	done := make(chan error, 1)
	go func() {
		cmd := newRootCmd()
		cmd.SetOut(&buf)
		cmd.SetArgs([]string{"status", "llama", "-w", "--kubeconfig", kc})
		done <- cmd.ExecuteContext(wctx)
	}()
	waitFor := func(what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(buf.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("status -w never printed %q:\n%s", what, buf.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("prod/llama  ready=Unknown  replicas=-")
	llama.Status.ReplicasReady = "2/6"
	if err := env.Client.Status().Update(ctx, llama); err != nil {
		t.Fatal(err)
	}
	waitFor("prod/llama  ready=Unknown  replicas=2/6")
	if err := env.Client.Delete(ctx, llama); err != nil {
		t.Fatal(err)
	}
	waitFor("prod/llama deleted")
	stop()
	if err := <-done; err != nil {
		t.Errorf("status -w ended with %v", err)
	}
}

// writeServerKubeconfig writes a kubeconfig whose one context, name, points at server.
func writeServerKubeconfig(t *testing.T, name, server string) string {
	t.Helper()
	kc := "apiVersion: v1\nkind: Config\nclusters: [{name: " + name + ", cluster: {server: '" + server + "', insecure-skip-tls-verify: true}}]\n" +
		"users: [{name: " + name + ", user: {token: x}}]\ncontexts: [{name: " + name + ", context: {cluster: " + name + ", user: " + name + "}}]\ncurrent-context: " + name + "\n"
	return writeTemp(t, name+".kubeconfig", []byte(kc))
}

// TestRenderInputsAndClusterList: -f takes directories (with -R), input errors name the
// file and the field, and --cluster prints one cluster's objects as a List that kubectl
// applies (server-side dry run against a real API server with the CRDs).
func TestRenderInputsAndClusterList(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	ctx := context.Background()
	raw, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sub := filepath.Join(dir, "team-a")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	other := strings.Replace(string(raw), "name: vllm-llama3-8b-instruct\n", "name: second\n", 1)
	if err := os.WriteFile(filepath.Join(dir, "one.yaml"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "two.yaml"), []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	clusters := writeClusters(t)
	flat, err := fleetctl(ctx, "render", "-f", dir, "--clusters", clusters)
	if err != nil {
		t.Fatal(err)
	}
	deep, err := fleetctl(ctx, "render", "-f", dir, "-R", "--clusters", clusters)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := strings.Count(flat, "name: vllm-llama3-8b-instruct\n"), strings.Count(deep, "name: second\n"); a == 0 || b == 0 || strings.Contains(flat, "name: second\n") {
		t.Errorf("-f DIR renders only its files (%d), -R also its subdirectories (%d)", a, b)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(string(raw), "  replicas: 6\n", "  replicas: 6\n  replica: 2\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fleetctl(ctx, "render", "-f", bad, "--clusters", clusters); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), `unknown field "spec.replica"`) {
		t.Errorf("unknown field: %v", err)
	}
	cm := filepath.Join(t.TempDir(), "cm.yaml")
	os.WriteFile(cm, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"), 0o644)
	if _, err := fleetctl(ctx, "render", "-f", cm, "--clusters", clusters); err == nil || !strings.Contains(err.Error(), cm) || !strings.Contains(err.Error(), "neither a FleetInferenceService") {
		t.Errorf("wrong kind: %v", err)
	}
	if _, err := fleetctl(ctx, "render", "-f", filepath.Join(dir, "absent.yaml"), "--clusters", clusters); err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := fleetctl(ctx, "render", "-f", sample, "--clusters", clusters, "--cluster", "nowhere"); err == nil || !strings.Contains(err.Error(), `--cluster "nowhere"`) {
		t.Errorf("unknown --cluster: %v", err)
	}

	list, err := fleetctl(ctx, "render", "-f", sample, "--clusters", clusters, "--cluster", "gke-west")
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		APIVersion, Kind string
		Items            []map[string]any
	}
	if err := yaml.Unmarshal([]byte(list), &l); err != nil || l.APIVersion != "v1" || l.Kind != "List" || len(l.Items) == 0 {
		t.Fatalf("render --cluster: not a List: %v\n%s", err, list)
	}
	env := framework.Start(t, framework.CRDs())
	kc := writeKubeconfigFor(t, env)
	kubectl := exec.Command(filepath.Join(framework.BinDir(), "kubectl"), "--kubeconfig", kc, "apply", "--server-side", "--dry-run=server", "-f", "-")
	kubectl.Stdin = strings.NewReader(list)
	out, err := kubectl.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server -f - of render --cluster: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "serverside-applied (server dry run)"); n != len(l.Items) {
		t.Errorf("kubectl applied %d of %d objects:\n%s", n, len(l.Items), out)
	}

	// The names the README uses for the fleet's kinds resolve in kubectl.
	for _, name := range []string{"failoverdrills", "drills", "drill", "fleetinferenceservices", "fis", "inferfleet"} {
		get := exec.Command(filepath.Join(framework.BinDir(), "kubectl"), "--kubeconfig", kc, "get", name)
		if out, err := get.CombinedOutput(); err != nil || !strings.Contains(string(out), "No resources found") {
			t.Errorf("kubectl get %s: %v\n%s", name, err, out)
		}
	}
}

// writeKubeconfigFor writes env's kubeconfig to a file.
func writeKubeconfigFor(t *testing.T, env *framework.Env) string {
	t.Helper()
	raw, err := framework.Kubeconfig(env.Config, "hub")
	if err != nil {
		t.Fatal(err)
	}
	return writeTemp(t, "kubeconfig", raw)
}

// TestKubectlPlugin: fleetctl installed as kubectl-fleet on PATH is `kubectl fleet`.
func TestKubectlPlugin(t *testing.T) {
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "kubectl-fleet"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	kubectl := exec.Command(filepath.Join(framework.BinDir(), "kubectl"), "fleet", "version", "--client")
	kubectl.Env = append(os.Environ(), "PATH="+dir+string(filepath.ListSeparator)+os.Getenv("PATH"))
	out, err := kubectl.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "Client Version: ") {
		t.Errorf("kubectl fleet version --client: %v\n%s", err, out)
	}
	help := exec.Command(filepath.Join(dir, "kubectl-fleet"), "--help")
	out, err = help.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "kubectl fleet [command]") {
		t.Errorf("kubectl-fleet --help should read as kubectl fleet: %v\n%s", err, out)
	}
}
