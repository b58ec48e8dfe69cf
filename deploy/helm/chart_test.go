// Package helm_test lints and renders the hub's Helm chart with bin/helm, keeps it equal to
// the kustomize install under config/, and installs what it renders on a real API server.
package helm_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/internal/testenv"
)

// allSources turns on every value the chart has: every cluster source, the external CRDs,
// other addresses, resources and a cluster namespace apart from the release's.
const allSources = `
replicas: 3
clusterSources: [kubeconfig, gkehub, kind, clusterprofile]
clusterProfile: {namespace: fleet-inventory}
networkPolicy: {enabled: true}
podDisruptionBudget: {minAvailable: 2}
grafanaDashboard: {enabled: true}
serviceMonitor: {enabled: true, labels: {release: kube-prometheus-stack}, interval: 30s}
prometheusRule: {enabled: true, labels: {release: kube-prometheus-stack}}
gke: {project: fleet-host, projectNumber: "123456789012", location: europe-west3, selector: "env=prod,tier in (gpu)", useEndpoint: true}
kind: {prefix: team-}
serviceAccount: {annotations: {iam.gke.io/gcp-service-account: hub@fleet-host.iam.gserviceaccount.com}}
externalCRDs: {gatewayAPI: true, inferencePoolImport: true}
resources: {requests: {cpu: 200m, memory: 256Mi}, limits: {memory: 1Gi}}
metrics: {bindAddress: ":9090", service: {port: 9443}, readers: [{kind: ServiceAccount, name: prometheus, namespace: monitoring}]}
healthProbe: {bindAddress: ":9091"}
clusterNamespace: fleet-members
extraArgs: [--member-timeout=30s]
`

func chartDir() string { return filepath.Join(testenv.Root(), "deploy", "helm", "inferfleet") }

// helmBin is bin/helm at the version hack/helm/go.mod pins; anything else fails the test.
func helmBin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(testenv.BinDir(), "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not found: run `make bins`", bin)
	}
	mod, err := os.ReadFile(filepath.Join(testenv.Root(), "hack", "helm", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	pinned := regexp.MustCompile(`(?m)^require helm\.sh/helm/v3 (v\S+)$`).FindSubmatch(mod)
	if pinned == nil {
		t.Fatal("hack/helm/go.mod does not require helm.sh/helm/v3")
	}
	out, err := exec.Command(bin, "version", "--template", "{{.Version}}").Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	if string(out) != string(pinned[1]) {
		t.Fatalf("%s is %s, hack/helm/go.mod pins %s: run `make bins`", bin, out, pinned[1])
	}
	return bin
}

// helm runs bin/helm with its state in a temporary home and returns stdout, or the error
// with stderr.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// valuesFile writes values into a file for --values.
func valuesFile(t *testing.T, values string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(f, []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// render runs helm template with the CRDs included and decodes every object.
func render(t *testing.T, release, namespace, values string) []*unstructured.Unstructured {
	t.Helper()
	out, err := helm(t, "template", release, chartDir(), "--namespace", namespace, "--include-crds", "--values", valuesFile(t, values))
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, out)
}

func decode(t *testing.T, manifests string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	docs := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := docs.Decode(&u.Object); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("decode: %v", err)
			}
			return objs
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

func readManifests(t *testing.T, files ...string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, f := range files {
		raw, err := os.ReadFile(filepath.Join(testenv.Root(), f))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, decode(t, string(raw))...)
	}
	return objs
}

func key(u *unstructured.Unstructured) string {
	return u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, u := range objs {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	t.Fatalf("no %s %s in %d objects", kind, name, len(objs))
	return nil
}

// into converts an unstructured object into a typed one.
func into[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		t.Fatalf("%s: %v", key(u), err)
	}
	return out
}

// grants expands RBAC rules into "group resource verb" entries.
func grants(rules []rbacRule) []string {
	var out []string
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, g+" "+res+" "+v)
				}
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

type rbacRule struct {
	APIGroups []string `json:"apiGroups"`
	Resources []string `json:"resources"`
	Verbs     []string `json:"verbs"`
}

func rulesOf(t *testing.T, u *unstructured.Unstructured) []rbacRule {
	t.Helper()
	raw, err := yaml.Marshal(u.Object["rules"])
	if err != nil {
		t.Fatal(err)
	}
	var rules []rbacRule
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	return rules
}

func hubContainer(t *testing.T, objs []*unstructured.Unstructured, name string) corev1.Container {
	t.Helper()
	pod := into[appsv1.Deployment](t, find(t, objs, "Deployment", name)).Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("deployment %s has %d containers", name, len(pod.Containers))
	}
	return pod.Containers[0]
}

func TestChartLints(t *testing.T) {
	for name, values := range map[string]string{"defaults": "", "all sources": allSources} {
		if out, err := helm(t, "lint", "--strict", chartDir(), "--values", valuesFile(t, values)); err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
	// Values the hub would refuse, or run wrongly with, fail the install with a reason.
	for _, tc := range []struct{ values, want string }{
		{"clusterSources: [kubeconfig, gkehub]", "gke.project is required when clusterSources has gkehub"},
		{"clusterSources: [gke]", "value must be one of 'kubeconfig', 'gkehub', 'kind'"},
		{"clusterSources: []", "/clusterSources"},
		{"leaderElection: {enabled: false}", "replicas > 1 needs leaderElection.enabled"},
		{"metrics: {bindAddress: localhost}", "/metrics/bindAddress"},
		{"gke: {projectNumber: fleet-host}", "/gke/projectNumber"},
		// A misspelled key is refused, naming it, instead of being ignored.
		{"metrics: {bindAdress: \":9090\"}", "bindAdress"},
		{"replica: 3", "replica"},
		{"clusterSources: [clusterprofile]", "clusterProfile.namespace is required when clusterSources has clusterprofile"},
	} {
		_, err := helm(t, "template", "inferfleet", chartDir(), "--values", valuesFile(t, tc.values))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("values %q: err = %v, want one saying %q", tc.values, err, tc.want)
		}
	}
	// One replica without leader election is a valid install.
	if _, err := helm(t, "template", "inferfleet", chartDir(), "--values", valuesFile(t, "replicas: 1\nleaderElection: {enabled: false}")); err != nil {
		t.Error(err)
	}
}

// TestChartDefaultsMatchKustomize keeps the chart's default install equal to `kubectl apply
// -k config/default`: the same objects, RBAC rules, CRDs and hub container.
func TestChartDefaultsMatchKustomize(t *testing.T) {
	chart := render(t, "inferfleet", "inferfleet-system", "")
	var kust struct{ Resources []string }
	raw, _ := os.ReadFile(filepath.Join(testenv.Root(), "config", "default", "kustomization.yaml"))
	if err := yaml.Unmarshal(raw, &kust); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, r := range kust.Resources {
		dir := filepath.Join("config", "default", r)
		if strings.HasSuffix(r, ".yaml") {
			files = append(files, filepath.Clean(dir))
			continue
		}
		var sub struct{ Resources []string }
		raw, _ := os.ReadFile(filepath.Join(testenv.Root(), dir, "kustomization.yaml"))
		if err := yaml.Unmarshal(raw, &sub); err != nil || len(sub.Resources) == 0 {
			t.Fatalf("%s/kustomization.yaml: %v", dir, err)
		}
		for _, f := range sub.Resources {
			files = append(files, filepath.Clean(filepath.Join(dir, f)))
		}
	}
	kustomize := readManifests(t, files...)
	// Helm installs into a namespace that exists (--create-namespace); the rest must match.
	var want, got []string
	for _, u := range kustomize {
		if u.GetKind() != "Namespace" {
			want = append(want, key(u))
		}
	}
	for _, u := range chart {
		got = append(got, key(u))
	}
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(want, got) {
		t.Fatalf("chart renders\n  %v\nconfig/default installs\n  %v", got, want)
	}

	for _, k := range kustomize {
		if k.GetKind() == "Namespace" {
			continue
		}
		c := find(t, chart, k.GetKind(), k.GetName())
		switch k.GetKind() {
		case "ClusterRole", "Role":
			kg, cg := grants(rulesOf(t, k)), grants(rulesOf(t, c))
			for _, g := range kg {
				if !slices.Contains(cg, g) {
					t.Errorf("config/rbac/role.yaml's %s grants %q, the chart's does not: run `make manifests`", k.GetKind(), g)
				}
			}
			for _, g := range cg {
				if !slices.Contains(kg, g) {
					t.Errorf("the chart's %s grants %q, config/rbac/role.yaml's does not: run `make manifests`", k.GetKind(), g)
				}
			}
		case "ClusterRoleBinding", "RoleBinding":
			for _, f := range []string{"roleRef", "subjects"} {
				if !equality.Semantic.DeepEqual(k.Object[f], c.Object[f]) {
					t.Errorf("%s %s: %s %v, config/rbac has %v", k.GetKind(), k.GetName(), f, c.Object[f], k.Object[f])
				}
			}
		case "CustomResourceDefinition":
			if !equality.Semantic.DeepEqual(k.Object, c.Object) {
				t.Errorf("the chart's CRD %s differs from config/crd/bases: run `make manifests`", k.GetName())
			}
		case "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			if !equality.Semantic.DeepEqual(k.Object["spec"], c.Object["spec"]) {
				t.Errorf("the chart's %s %s differs from config/admission: run `make manifests`", k.GetKind(), k.GetName())
			}
		case "Service":
			if !equality.Semantic.DeepEqual(k.Object["spec"].(map[string]any)["ports"], c.Object["spec"].(map[string]any)["ports"]) {
				t.Errorf("metrics Service ports %v, config/manager has %v", c.Object["spec"], k.Object["spec"])
			}
		case "Deployment":
			kc, cc := hubContainer(t, kustomize, k.GetName()), hubContainer(t, chart, k.GetName())
			// The chart names the lease namespace and the cluster source, which the hub
			// defaults to inferfleet-system and kubeconfig; otherwise the same flags.
			wantArgs := append(slices.Clone(kc.Args), "--leader-election-namespace=inferfleet-system", "--cluster-source=kubeconfig")
			sort.Strings(wantArgs)
			gotArgs := slices.Clone(cc.Args)
			sort.Strings(gotArgs)
			if !slices.Equal(wantArgs, gotArgs) {
				t.Errorf("hub args %v, want %v", gotArgs, wantArgs)
			}
			kc.Args, cc.Args, cc.ImagePullPolicy = nil, nil, ""
			if !equality.Semantic.DeepEqual(kc, cc) {
				t.Errorf("hub container\n  %+v\nconfig/manager has\n  %+v", cc, kc)
			}
			kr, _, _ := unstructured.NestedInt64(k.Object, "spec", "replicas")
			cr, _, _ := unstructured.NestedInt64(c.Object, "spec", "replicas")
			ks, _, _ := unstructured.NestedFieldCopy(k.Object, "spec", "template", "spec", "securityContext")
			cs, _, _ := unstructured.NestedFieldCopy(c.Object, "spec", "template", "spec", "securityContext")
			if kr != cr || !equality.Semantic.DeepEqual(ks, cs) {
				t.Errorf("replicas %d and pod security %v, config/manager has %d and %v", cr, cs, kr, ks)
			}
		}
	}

	// The copies the chart carries are the files under config/crd.
	for dir, src := range map[string]string{"crds": "config/crd/bases", "files/crds/gateway-api": "config/crd/external/gateway-api",
		"files/crds/inference-extension": "config/crd/external/inference-extension", "files/grafana": "config/grafana"} {
		copies, _ := filepath.Glob(filepath.Join(chartDir(), dir, "*.yaml"))
		if dir == "files/grafana" {
			copies, _ = filepath.Glob(filepath.Join(chartDir(), dir, "*.json"))
		}
		if len(copies) == 0 {
			t.Errorf("no CRDs in the chart's %s: run `make manifests`", dir)
		}
		for _, f := range copies {
			a, _ := os.ReadFile(f)
			b, err := os.ReadFile(filepath.Join(testenv.Root(), src, filepath.Base(f)))
			if err != nil || !bytes.Equal(a, b) {
				t.Errorf("the chart's %s/%s is not %s's: run `make manifests`", dir, filepath.Base(f), src)
			}
		}
	}
}

// TestChartRendersSources checks the hub flags and objects every value turns into, and
// that each rendered flag is one cmd/hub defines.
func TestChartRendersSources(t *testing.T) {
	objs := render(t, "inferfleet", "inferfleet-system", allSources)
	hub := hubContainer(t, objs, "inferfleet-hub")
	want := []string{
		"--leader-elect",
		"--leader-election-namespace=inferfleet-system",
		"--metrics-bind-address=:9090",
		"--health-probe-bind-address=:9091",
		"--cluster-namespace=fleet-members",
		"--cluster-source=kubeconfig,gkehub,kind,clusterprofile",
		"--gke-project=fleet-host",
		"--gke-project-number=123456789012",
		"--gke-location=europe-west3",
		"--gke-selector=env=prod,tier in (gpu)",
		"--gke-endpoint",
		"--kind-prefix=team-",
		"--clusterprofile-namespace=fleet-inventory",
		"--clusterprofile-consumer=inferfleet",
		"--member-timeout=30s",
	}
	if !slices.Equal(hub.Args, want) {
		t.Errorf("hub args\n  %q\nwant\n  %q", hub.Args, want)
	}
	if r := into[appsv1.Deployment](t, find(t, objs, "Deployment", "inferfleet-hub")).Spec.Replicas; r == nil || *r != 3 {
		t.Errorf("replicas %v, want 3", r)
	}
	if got := hub.Resources.Limits.Memory().String() + " " + hub.Resources.Requests.Cpu().String(); got != "1Gi 200m" {
		t.Errorf("resources %v", hub.Resources)
	}
	var ports []string
	for _, p := range hub.Ports {
		ports = append(ports, fmt.Sprintf("%s=%d", p.Name, p.ContainerPort))
	}
	if !slices.Equal(ports, []string{"metrics=9090", "probes=9091"}) {
		t.Errorf("container ports %v", ports)
	}
	// Three replicas: a PodDisruptionBudget and spread over nodes and zones; the
	// NetworkPolicy admits metrics and probes only.
	pdb := find(t, objs, "PodDisruptionBudget", "inferfleet-hub")
	if v, _, _ := unstructured.NestedFieldNoCopy(pdb.Object, "spec", "minAvailable"); fmt.Sprint(v) != "2" {
		t.Errorf("PodDisruptionBudget minAvailable %v, want 2", v)
	}
	spread := into[appsv1.Deployment](t, find(t, objs, "Deployment", "inferfleet-hub")).Spec.Template.Spec.TopologySpreadConstraints
	if len(spread) != 2 || spread[0].TopologyKey != "kubernetes.io/hostname" || spread[1].TopologyKey != "topology.kubernetes.io/zone" {
		t.Errorf("topology spread %+v", spread)
	}
	np := find(t, objs, "NetworkPolicy", "inferfleet-hub")
	if ingress, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress"); len(ingress) != 2 {
		t.Errorf("NetworkPolicy ingress %v, want metrics and probes", ingress)
	}
	// With its default peers, the chart's policy admits what config/networkpolicy's does.
	npDefault := find(t, render(t, "inferfleet", "inferfleet-system", "networkPolicy: {enabled: true}"), "NetworkPolicy", "inferfleet-hub")
	kustNP := readManifests(t, "config/networkpolicy/networkpolicy.yaml")[0]
	for _, field := range []string{"ingress", "policyTypes"} {
		if a, b := npDefault.Object["spec"].(map[string]any)[field], kustNP.Object["spec"].(map[string]any)[field]; !equality.Semantic.DeepEqual(a, b) {
			t.Errorf("NetworkPolicy %s: the chart's %v, config/networkpolicy's %v", field, a, b)
		}
	}
	dash := find(t, objs, "ConfigMap", "inferfleet-hub-dashboard")
	board, _ := os.ReadFile(filepath.Join(testenv.Root(), "config", "grafana", "inferfleet.json"))
	if data, _, _ := unstructured.NestedString(dash.Object, "data", "inferfleet.json"); data != strings.TrimRight(string(board), "\n") || dash.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap: label %v, %d bytes of the dashboard's %d", dash.GetLabels(), len(data), len(board))
	}
	// The Prometheus operator's objects: the ServiceMonitor scrapes the metrics Service as
	// config/prometheus does, the PrometheusRule carries config/prometheus's rules, both with
	// the selection labels; the reader is bound to the metrics-reader ClusterRole.
	sm := find(t, objs, "ServiceMonitor", "inferfleet-hub")
	kustSM := readManifests(t, "config/prometheus/servicemonitor.yaml")[0]
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	kustEndpoints, _, _ := unstructured.NestedSlice(kustSM.Object, "spec", "endpoints")
	if len(endpoints) != 1 || len(kustEndpoints) != 1 {
		t.Fatalf("ServiceMonitor endpoints %v, config/prometheus's %v", endpoints, kustEndpoints)
	}
	ep, kep := endpoints[0].(map[string]any), kustEndpoints[0].(map[string]any)
	if ep["interval"] != "30s" {
		t.Errorf("ServiceMonitor interval %v, want 30s", ep["interval"])
	}
	delete(ep, "interval")
	if !equality.Semantic.DeepEqual(ep, kep) {
		t.Errorf("the chart's ServiceMonitor endpoint\n  %v\nconfig/prometheus's\n  %v", ep, kep)
	}
	if sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels"); !selects(sel, find(t, objs, "Service", "inferfleet-hub-metrics").GetLabels()) {
		t.Errorf("ServiceMonitor selector %v does not select the metrics Service", sel)
	}
	rule := find(t, objs, "PrometheusRule", "inferfleet-hub")
	kustRule := readManifests(t, "config/prometheus/prometheusrule.yaml")[0]
	if !equality.Semantic.DeepEqual(rule.Object["spec"], kustRule.Object["spec"]) {
		t.Error("the chart's PrometheusRule differs from config/prometheus/prometheusrule.yaml: run `make manifests`")
	}
	for _, u := range []*unstructured.Unstructured{sm, rule} {
		if u.GetLabels()["release"] != "kube-prometheus-stack" {
			t.Errorf("%s lacks its selection label: %v", key(u), u.GetLabels())
		}
	}
	binding := into[rbacv1.ClusterRoleBinding](t, find(t, objs, "ClusterRoleBinding", "inferfleet-hub-metrics-reader"))
	if binding.RoleRef.Name != "inferfleet-hub-metrics-reader" || len(binding.Subjects) != 1 || binding.Subjects[0].Name != "prometheus" || binding.Subjects[0].Namespace != "monitoring" {
		t.Errorf("metrics reader binding %+v", binding)
	}
	insecure := render(t, "inferfleet", "inferfleet-system", "serviceMonitor: {enabled: true}\nmetrics: {secure: false}")
	if ep, _, _ := unstructured.NestedSlice(find(t, insecure, "ServiceMonitor", "inferfleet-hub").Object, "spec", "endpoints"); ep[0].(map[string]any)["scheme"] != "http" {
		t.Errorf("with metrics.secure false the ServiceMonitor should scrape http: %v", ep)
	}

	one := render(t, "inferfleet", "inferfleet-system", "replicas: 1\nleaderElection: {enabled: false}")
	for _, u := range one {
		if u.GetKind() == "PodDisruptionBudget" {
			t.Error("a PodDisruptionBudget for one replica would block every drain")
		}
	}
	svc := into[corev1.Service](t, find(t, objs, "Service", "inferfleet-hub-metrics"))
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 9443 || svc.Spec.Ports[0].TargetPort.StrVal != "metrics" {
		t.Errorf("metrics Service ports %+v", svc.Spec.Ports)
	}
	if sa := find(t, objs, "ServiceAccount", "inferfleet-hub"); sa.GetAnnotations()["iam.gke.io/gcp-service-account"] != "hub@fleet-host.iam.gserviceaccount.com" {
		t.Errorf("service account annotations %v", sa.GetAnnotations())
	}
	// Discovery writes registrations in the cluster namespace: its Role goes there.
	for _, kind := range []string{"Role", "RoleBinding"} {
		if ns := find(t, objs, kind, "inferfleet-hub").GetNamespace(); ns != "fleet-members" {
			t.Errorf("%s in %q, want the cluster namespace fleet-members", kind, ns)
		}
	}
	var crds []string
	for _, u := range objs {
		if u.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, u.GetName())
			if u.GetAnnotations()["helm.sh/resource-policy"] != "keep" && !strings.HasSuffix(u.GetName(), ".fleet.inferfleet.dev") {
				t.Errorf("external CRD %s is not kept on uninstall", u.GetName())
			}
		}
	}
	sort.Strings(crds)
	if want := []string{"failoverdrills.fleet.inferfleet.dev", "fleetinferenceservices.fleet.inferfleet.dev", "gateways.gateway.networking.k8s.io",
		"httproutes.gateway.networking.k8s.io", "inferencepoolimports.inference.networking.x-k8s.io"}; !slices.Equal(crds, want) {
		t.Errorf("CRDs %v, want %v", crds, want)
	}

	// Metrics and probes off: no ports, no probes, no Service.
	off := render(t, "inferfleet", "inferfleet-system", `{metrics: {bindAddress: "0"}, healthProbe: {bindAddress: "0"}}`)
	if hub := hubContainer(t, off, "inferfleet-hub"); len(hub.Ports) > 0 || hub.LivenessProbe != nil || hub.ReadinessProbe != nil {
		t.Errorf("with metrics and probes off: ports %v, probes %v %v", hub.Ports, hub.LivenessProbe, hub.ReadinessProbe)
	}
	for _, u := range off {
		if u.GetKind() == "Service" {
			t.Errorf("metrics off still renders %s", key(u))
		}
	}

	// Every flag the chart can render is one the hub defines.
	exe := filepath.Join(t.TempDir(), "hub")
	build := exec.Command("go", "build", "-o", exe, "./cmd/hub")
	build.Dir = testenv.Root()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the hub: %v\n%s", err, out)
	}
	usage, _ := exec.Command(exe, "-h").CombinedOutput()
	defined := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(string(usage), -1) {
		defined[m[1]] = true
	}
	if len(defined) == 0 {
		t.Fatalf("no flags in the hub's usage:\n%s", usage)
	}
	for _, a := range hub.Args {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !defined[name] {
			t.Errorf("the chart renders %s, which cmd/hub does not define", a)
		}
	}
}

// TestChartInstalls creates what the chart renders, two releases side by side, on a real
// API server (with the Prometheus operator's CRDs, for the second release's ServiceMonitor
// and PrometheusRule), then checks that the CRDs serve, a sample validates, the hub's
// service account may do exactly what config/rbac/role.yaml grants, and only the bound
// reader may scrape the hub's metrics.
func TestChartInstalls(t *testing.T) {
	env := testenv.Start(t, []string{filepath.Join(testenv.Root(), "config", "crd", "external", "prometheus-operator")})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.New(env.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	releases := []struct{ name, namespace, values, clusterNS, hub string }{
		{"inferfleet", "inferfleet-system", "", "inferfleet-system", "inferfleet-hub"},
		{"edge", "fleet-edge", allSources, "fleet-members", "edge-inferfleet-hub"},
	}
	for _, rel := range releases {
		objs := render(t, rel.name, rel.namespace, rel.values)
		for _, ns := range []string{rel.namespace, rel.clusterNS} {
			if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); client.IgnoreAlreadyExists(err) != nil {
				t.Fatal(err)
			}
		}
		// CRDs first, as helm installs them, then everything else once they serve. The
		// second release finds its own CRDs there already, as helm would.
		for _, crds := range []bool{true, false} {
			for _, u := range objs {
				if (u.GetKind() == "CustomResourceDefinition") != crds {
					continue
				}
				err := c.Create(ctx, u)
				if crds {
					err = client.IgnoreAlreadyExists(err)
				}
				if err != nil {
					t.Fatalf("release %s: create %s: %v", rel.name, key(u), err)
				}
				if crds {
					waitEstablished(ctx, t, c, u.GetName(), rel.name)
				}
			}
		}
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(find(t, objs, "Deployment", rel.hub).GroupVersionKind())
		if err := c.Get(ctx, client.ObjectKey{Namespace: rel.namespace, Name: rel.hub}, live); err != nil {
			t.Fatal(err)
		}
		if got, want := hubContainer(t, []*unstructured.Unstructured{live}, rel.hub).Args, hubContainer(t, objs, rel.hub).Args; !slices.Equal(got, want) {
			t.Errorf("release %s: stored hub args %v, rendered %v", rel.name, got, want)
		}
	}

	// The CRDs the chart installed validate a sample and serve the external kinds.
	sample := readManifests(t, "config/samples/fleet_v1alpha1_two-region-h100.yaml")
	for _, u := range sample {
		if err := c.Create(ctx, u); err != nil {
			t.Fatalf("create sample %s: %v", key(u), err)
		}
	}
	for _, gvk := range []string{"gateway.networking.k8s.io/v1 GatewayList", "gateway.networking.k8s.io/v1 HTTPRouteList", "inference.networking.x-k8s.io/v1alpha1 InferencePoolImportList"} {
		list := &unstructured.UnstructuredList{}
		gv, kind, _ := strings.Cut(gvk, " ")
		list.SetAPIVersion(gv)
		list.SetKind(kind)
		if err := c.List(ctx, list); err != nil {
			t.Errorf("list %s: %v", gvk, err)
		}
	}

	// The second release's monitoring objects were stored; its metrics reader may GET
	// /metrics, which nobody else may.
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("monitoring.coreos.com/v1")
		u.SetKind(kind)
		if err := c.Get(ctx, client.ObjectKey{Namespace: "fleet-edge", Name: "edge-inferfleet-hub"}, u); err != nil {
			t.Errorf("release edge: %s: %v", kind, err)
		}
	}
	for user, want := range map[string]bool{
		"system:serviceaccount:monitoring:prometheus":        true,
		"system:serviceaccount:monitoring:other":             false,
		"system:serviceaccount:fleet-edge:default":           false,
		"system:serviceaccount:inferfleet-system:prometheus": false,
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: []string{"system:serviceaccounts", "system:authenticated"},
			NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: "/metrics", Verb: "get"},
		}}
		if err := c.Create(ctx, sar); err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed != want {
			t.Errorf("%s may GET /metrics: %v, want %v", user, sar.Status.Allowed, want)
		}
	}

	// What the service account of each release may do: exactly config/rbac/role.yaml.
	var clusterRules, nsRules []rbacRule
	for _, u := range readManifests(t, "config/rbac/role.yaml") {
		switch u.GetKind() {
		case "ClusterRole":
			clusterRules = rulesOf(t, u)
		case "Role":
			nsRules = rulesOf(t, u)
		}
	}
	if len(clusterRules) == 0 || len(nsRules) == 0 {
		t.Fatal("config/rbac/role.yaml has no ClusterRole or no Role")
	}
	for _, rel := range releases {
		user := "system:serviceaccount:" + rel.namespace + ":" + rel.hub
		for _, g := range grants(clusterRules) {
			if !allowed(ctx, t, c, user, g, "default") {
				t.Errorf("release %s: %s may not %q in namespace default", rel.name, user, g)
			}
		}
		for _, g := range grants(nsRules) {
			if !allowed(ctx, t, c, user, g, rel.clusterNS) {
				t.Errorf("release %s: %s may not %q in its cluster namespace %s", rel.name, user, g, rel.clusterNS)
			}
			if allowed(ctx, t, c, user, g, "default") {
				t.Errorf("release %s: %s may %q outside its cluster namespace", rel.name, user, g)
			}
		}
		for _, g := range []string{" pods get", " secrets update", "fleet.inferfleet.dev fleetinferenceservices delete", "apps daemonsets create"} {
			if allowed(ctx, t, c, user, g, rel.clusterNS) {
				t.Errorf("release %s: %s may %q, which config/rbac/role.yaml does not grant", rel.name, user, g)
			}
		}
	}
}

// selects reports whether every label of selector is in labels.
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

// allowed asks the API server whether user may do grant ("group resource[/sub] verb").
func allowed(ctx context.Context, t *testing.T, c client.Client, user, grant, namespace string) bool {
	t.Helper()
	f := strings.SplitN(grant, " ", 3)
	resource, sub, _ := strings.Cut(f[1], "/")
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: []string{"system:serviceaccounts", "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Group: f[0], Resource: resource, Subresource: sub, Verb: f[2], Namespace: namespace,
		},
	}}
	if resource == "namespaces" {
		sar.Spec.ResourceAttributes.Namespace = ""
	}
	if err := c.Create(ctx, sar); err != nil {
		t.Fatalf("SubjectAccessReview %q: %v", grant, err)
	}
	return sar.Status.Allowed
}

func waitEstablished(ctx context.Context, t *testing.T, c client.Client, name, release string) {
	t.Helper()
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	for {
		if err := c.Get(ctx, client.ObjectKey{Name: name}, crd); err == nil {
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, cond := range conds {
				m, _ := cond.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("release %s: CRD %s not established", release, name)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
