package render

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

// eppTestService is a defaulted service named llama in namespace serving, after mutate.
func eppTestService(mutate func(*v1alpha1.FleetInferenceService)) *v1alpha1.FleetInferenceService {
	svc := &v1alpha1.FleetInferenceService{
		TypeMeta:   metav1.TypeMeta{APIVersion: "fleet.inferfleet.dev/v1alpha1", Kind: "FleetInferenceService"},
		ObjectMeta: metav1.ObjectMeta{Name: "llama", Namespace: "serving", UID: "0d6f1c9e-5b7a-4c1e-9f3a-2b8d7e6a1c00"},
		Spec: v1alpha1.FleetInferenceServiceSpec{
			Model:     v1alpha1.ModelSpec{Name: "meta-llama/Llama-3.1-8B-Instruct"},
			Replicas:  4,
			Placement: v1alpha1.PlacementSpec{Clusters: []v1alpha1.ClusterPlacement{{Name: "gke-west"}, {Name: "gke-east"}}},
		},
	}
	if mutate != nil {
		mutate(svc)
	}
	v1alpha1.SetDefaults(svc)
	return svc
}

var eppCases = []struct {
	name   string
	mutate func(*v1alpha1.FleetInferenceService)
}{
	{name: "gke", mutate: nil}, // provider GKE (the default), 1 replica
	{name: "inferencepoolimport", mutate: func(s *v1alpha1.FleetInferenceService) {
		s.Spec.Gateway.Provider = v1alpha1.ProviderInferencePoolImport
		s.Spec.Gateway.ClassName = "istio"
	}},
	{name: "ha-failclose", mutate: func(s *v1alpha1.FleetInferenceService) {
		s.Spec.EndpointPicker.Replicas = 2
		s.Spec.EndpointPicker.Image = "us-docker.pkg.dev/example/epp/epp:v1.5.0-patched"
		s.Spec.EndpointPicker.FailureMode = v1alpha1.FailClose
	}},
	{name: "port9000", mutate: func(s *v1alpha1.FleetInferenceService) {
		s.Spec.Model.Server.Port = 9000
	}},
	{name: "gke-monitoring", mutate: func(s *v1alpha1.FleetInferenceService) {
		s.Spec.EndpointPicker.Monitoring = &v1alpha1.EndpointPickerMonitoring{GKE: true}
	}},
	{name: "scale-to-zero", mutate: func(s *v1alpha1.FleetInferenceService) {
		s.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MinReplicas: new(int32), MaxReplicas: 8,
			Metrics: []v1alpha1.AutoscalingMetric{{Type: v1alpha1.MetricKVCacheUtilization, AverageUtilization: new(int32(70))}}}
	}},
}

func TestEndpointPickerGolden(t *testing.T) {
	for _, tc := range eppCases {
		t.Run(tc.name, func(t *testing.T) {
			svc := eppTestService(tc.mutate)
			got := toYAML(t, endpointPicker(svc))
			if again := toYAML(t, endpointPicker(svc)); !bytes.Equal(got, again) {
				t.Fatalf("output is not deterministic:\n%s", cmp.Diff(string(got), string(again)))
			}
			golden(t, filepath.Join("endpointpicker", tc.name+".yaml"), got)
		})
	}
}

// eppFind returns the single object of type T named name, failing the test otherwise.
func eppFind[T client.Object](t *testing.T, objs []client.Object, name string) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if x, ok := o.(T); ok && o.GetName() == name {
			found = append(found, x)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want exactly one %T named %q, found %d", zero, name, len(found))
	}
	return found[0]
}

func eppFindGVK(objs []client.Object, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if u, ok := o.(*unstructured.Unstructured); ok && u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

func TestEndpointPickerObjects(t *testing.T) {
	for _, tc := range eppCases {
		t.Run(tc.name, func(t *testing.T) {
			svc := eppTestService(tc.mutate)
			objs := endpointPicker(svc)
			epp := EndpointPickerName(svc)
			ha := svc.Spec.EndpointPicker.Replicas > 1
			port := svc.Spec.Model.Server.Port

			// Every object: TypeMeta set, namespaced in svc's namespace (but the cluster
			// RBAC of monitoring), owned by svc.
			for _, o := range objs {
				gvk := o.GetObjectKind().GroupVersionKind()
				if gvk.Kind == "" || gvk.Version == "" {
					t.Errorf("%T %s has no apiVersion/kind", o, o.GetName())
				}
				if gvk.Kind == "ClusterRole" || gvk.Kind == "ClusterRoleBinding" {
					if o.GetNamespace() != "" {
						t.Errorf("%s %s: namespace %q, want none", gvk.Kind, o.GetName(), o.GetNamespace())
					}
				} else if o.GetNamespace() != svc.Namespace {
					t.Errorf("%s %s: namespace %q, want %q", gvk.Kind, o.GetName(), o.GetNamespace(), svc.Namespace)
				}
				if !OwnedBy(o, svc) || o.GetLabels()[LabelUID] != string(svc.UID) {
					t.Errorf("%s %s lacks the ownership labels: %v", gvk.Kind, o.GetName(), o.GetLabels())
				}
			}

			// Deployment: chart args, image, replicas, selector.
			dep := eppFind[*appsv1.Deployment](t, objs, epp)
			if got := *dep.Spec.Replicas; got != svc.Spec.EndpointPicker.Replicas {
				t.Errorf("replicas %d, want %d", got, svc.Spec.EndpointPicker.Replicas)
			}
			if dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
				t.Errorf("strategy %q, want Recreate", dep.Spec.Strategy.Type)
			}
			if len(dep.Spec.Template.Spec.Containers) != 1 {
				t.Fatalf("want one container, got %d", len(dep.Spec.Template.Spec.Containers))
			}
			c := dep.Spec.Template.Spec.Containers[0]
			if c.Image != svc.Spec.EndpointPicker.Image {
				t.Errorf("image %q, want %q", c.Image, svc.Spec.EndpointPicker.Image)
			}
			for _, pair := range [][2]string{
				{"--pool-name", svc.Name},
				{"--pool-namespace", svc.Namespace},
				{"--pool-group", "inference.networking.k8s.io"},
				{"--config-file", "/config/default-plugins.yaml"},
			} {
				i := slices.Index(c.Args, pair[0])
				if i < 0 || i+1 >= len(c.Args) || c.Args[i+1] != pair[1] {
					t.Errorf("args %q: want %s %s", c.Args, pair[0], pair[1])
				}
			}
			// The hub reads the picker's request counters only to scale from zero, and
			// cannot pass its token through the pod proxy: auth is off then, and only then.
			if got := slices.Contains(c.Args, "--metrics-endpoint-auth=false"); got != svc.Spec.ScalesToZero() {
				t.Errorf("--metrics-endpoint-auth=false present = %v, want %v (scales to zero)", got, svc.Spec.ScalesToZero())
			}
			if got := slices.Contains(c.Args, "--ha-enable-leader-election"); got != ha {
				t.Errorf("--ha-enable-leader-election present = %v, want %v", got, ha)
			}
			wantProbe := "inference-extension"
			if ha {
				wantProbe = "liveness"
			}
			if got := *c.LivenessProbe.GRPC.Service; got != wantProbe {
				t.Errorf("liveness probe service %q, want %q", got, wantProbe)
			}
			sel := dep.Spec.Selector.MatchLabels
			if diff := cmp.Diff(map[string]string{"inferencepool": epp}, sel); diff != "" {
				t.Errorf("selector differs from the chart's (-want +got):\n%s", diff)
			}
			for k, v := range sel {
				if dep.Spec.Template.Labels[k] != v {
					t.Errorf("pod template labels %v do not match selector %v", dep.Spec.Template.Labels, sel)
				}
			}
			vol := dep.Spec.Template.Spec.Volumes
			if len(vol) != 1 || vol[0].ConfigMap == nil || vol[0].ConfigMap.Name != epp {
				t.Errorf("volumes %v: want the ConfigMap %s", vol, epp)
			}
			cm := eppFind[*corev1.ConfigMap](t, objs, epp)
			if !strings.Contains(cm.Data["default-plugins.yaml"], "kind: EndpointPickerConfig") {
				t.Errorf("ConfigMap lacks default-plugins.yaml: %v", cm.Data)
			}

			// Service: ext-proc port 9002; the chart sets no appProtocol.
			s := eppFind[*corev1.Service](t, objs, epp)
			if diff := cmp.Diff(sel, s.Spec.Selector); diff != "" {
				t.Errorf("Service selector differs from the Deployment's (-want +got):\n%s", diff)
			}
			if len(s.Spec.Ports) == 0 || s.Spec.Ports[0].Name != "grpc-ext-proc" || s.Spec.Ports[0].Port != 9002 ||
				s.Spec.Ports[0].Protocol != corev1.ProtocolTCP || s.Spec.Ports[0].AppProtocol != nil ||
				s.Spec.Ports[0].TargetPort.IntValue() != 9002 {
				t.Errorf("Service ports %+v: want grpc-ext-proc 9002/TCP without appProtocol first", s.Spec.Ports)
			}

			// RBAC: the pool and objectives Role, bound to the ServiceAccount.
			eppFind[*corev1.ServiceAccount](t, objs, epp)
			role := eppFind[*rbacv1.Role](t, objs, epp+"-non-sa")
			for _, want := range []struct{ group, resource string }{
				{"inference.networking.k8s.io", "inferencepools"},
				{"inference.networking.x-k8s.io", "inferenceobjectives"},
			} {
				ok := false
				for _, r := range role.Rules {
					if slices.Contains(r.APIGroups, want.group) && slices.Contains(r.Resources, want.resource) &&
						slices.Contains(r.Verbs, "get") && slices.Contains(r.Verbs, "watch") && slices.Contains(r.Verbs, "list") {
						ok = true
					}
				}
				if !ok {
					t.Errorf("Role %s does not grant get/watch/list on %s.%s: %+v", role.Name, want.resource, want.group, role.Rules)
				}
			}
			rb := eppFind[*rbacv1.RoleBinding](t, objs, epp+"-non-sa")
			if rb.RoleRef.Name != role.Name || len(rb.Subjects) != 1 || rb.Subjects[0].Name != epp {
				t.Errorf("RoleBinding %s: %+v %+v", rb.Name, rb.RoleRef, rb.Subjects)
			}
			leaderRoles := 0
			for _, o := range objs {
				if strings.Contains(o.GetName(), "-leader-election") {
					leaderRoles++
				}
			}
			if want := map[bool]int{false: 0, true: 2}[ha]; leaderRoles != want {
				t.Errorf("%d leader-election RBAC objects, want %d", leaderRoles, want)
			}

			// GKE policies.
			hcps, bps := eppFindGVK(objs, "HealthCheckPolicy"), eppFindGVK(objs, "GCPBackendPolicy")
			if svc.Spec.Gateway.Provider != v1alpha1.ProviderGKE {
				for _, o := range objs {
					if g := o.GetObjectKind().GroupVersionKind().Group; strings.HasSuffix(g, "gke.io") {
						t.Errorf("provider %s renders GKE kind %s", svc.Spec.Gateway.Provider, o.GetObjectKind().GroupVersionKind())
					}
				}
				return
			}
			if len(hcps) != 1 || len(bps) != 1 {
				t.Fatalf("want one HealthCheckPolicy and one GCPBackendPolicy, got %d and %d", len(hcps), len(bps))
			}
			hcp, bp := hcps[0], bps[0]
			if hcp.GroupVersionKind() != GVKHealthCheckPolicy || bp.GroupVersionKind() != GVKGCPBackendPolicy {
				t.Errorf("GVKs %v, %v", hcp.GroupVersionKind(), bp.GroupVersionKind())
			}
			for _, u := range []*unstructured.Unstructured{hcp, bp} {
				ref, _, _ := unstructured.NestedStringMap(u.Object, "spec", "targetRef")
				want := map[string]string{"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": svc.Name}
				if diff := cmp.Diff(want, ref); diff != "" || u.GetName() != svc.Name {
					t.Errorf("%s %s targetRef (-want +got):\n%s", u.GetKind(), u.GetName(), diff)
				}
			}
			path, _, _ := unstructured.NestedString(hcp.Object, "spec", "default", "config", "httpHealthCheck", "requestPath")
			hport, _, _ := unstructured.NestedInt64(hcp.Object, "spec", "default", "config", "httpHealthCheck", "port")
			if path != "/health" || hport != int64(port) {
				t.Errorf("HealthCheckPolicy probes %s on %d, want /health on %d", path, hport, port)
			}
			timeout, _, _ := unstructured.NestedInt64(bp.Object, "spec", "default", "timeoutSec")
			logging, _, _ := unstructured.NestedBool(bp.Object, "spec", "default", "logging", "enabled")
			if timeout != 300 || !logging {
				t.Errorf("GCPBackendPolicy timeoutSec %d logging %v, want 300 true", timeout, logging)
			}
		})
	}
}

// TestEndpointPickerLongName: for the longest valid name (58 characters) every name and
// label value is still valid, the EPP objects are named EndpointPickerName(svc) (which the
// InferencePool's endpointPickerRef names; unlike the chart, not cut to 40 characters), and
// the pool name in --pool-name and the GKE policies is the whole service name.
func TestEndpointPickerLongName(t *testing.T) {
	name := "a" + strings.Repeat("-long-name", 5) + "-sevens" // 58 characters
	if len(name) != 58 {
		t.Fatalf("test name has %d characters", len(name))
	}
	svc := eppTestService(func(s *v1alpha1.FleetInferenceService) { s.Name = name })
	epp := EndpointPickerName(svc)
	objs := endpointPicker(svc)
	for _, o := range objs {
		kind := o.GetObjectKind().GroupVersionKind().Kind
		if errs := validation.IsDNS1123Subdomain(o.GetName()); len(errs) > 0 {
			t.Errorf("%s name %q: %v", kind, o.GetName(), errs)
		}
		for k, v := range o.GetLabels() {
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
				t.Errorf("%s %s label %s=%q: %v", kind, o.GetName(), k, v, errs)
			}
		}
	}
	s := eppFind[*corev1.Service](t, objs, epp)
	if errs := validation.IsDNS1035Label(s.Name); len(errs) > 0 {
		t.Errorf("Service name %q: %v", s.Name, errs)
	}
	dep := eppFind[*appsv1.Deployment](t, objs, epp)
	for k, v := range dep.Spec.Template.Labels {
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			t.Errorf("pod label %s=%q: %v", k, v, errs)
		}
	}
	args := dep.Spec.Template.Spec.Containers[0].Args
	if i := slices.Index(args, "--pool-name"); i < 0 || args[i+1] != name {
		t.Errorf("--pool-name is not the whole service name: %q", args)
	}
	if hcp := eppFindGVK(objs, "HealthCheckPolicy"); len(hcp) != 1 || hcp[0].GetName() != name {
		t.Errorf("HealthCheckPolicy not named %q", name)
	}
}

// eppCountKinds counts objects by kind.
func eppCountKinds(objs []client.Object) map[string]int {
	n := map[string]int{}
	for _, o := range objs {
		n[o.GetObjectKind().GroupVersionKind().Kind]++
	}
	return n
}

// TestEndpointPickerGKEMonitoring: monitoring.gke adds exactly the chart's nine
// monitoring objects; unset, false, or with a provider other than GKE it adds none; the
// cluster-scoped ones are owned by the service and named after its namespace, so the
// same service in another namespace gets other names.
func TestEndpointPickerGKEMonitoring(t *testing.T) {
	monitor := func(s *v1alpha1.FleetInferenceService) {
		s.Spec.EndpointPicker.Monitoring = &v1alpha1.EndpointPickerMonitoring{GKE: true}
	}
	plain := endpointPicker(eppTestService(nil))
	off := endpointPicker(eppTestService(func(s *v1alpha1.FleetInferenceService) {
		s.Spec.EndpointPicker.Monitoring = &v1alpha1.EndpointPickerMonitoring{GKE: false}
	}))
	if diff := cmp.Diff(toYAML(t, plain), toYAML(t, off)); diff != "" {
		t.Errorf("monitoring.gke false renders differently from unset:\n%s", diff)
	}
	// Validation rejects this; the renderer still renders nothing for it, like the chart.
	imp := func(s *v1alpha1.FleetInferenceService) {
		s.Spec.Gateway.Provider = v1alpha1.ProviderInferencePoolImport
		s.Spec.Gateway.ClassName = "istio"
	}
	if diff := cmp.Diff(string(toYAML(t, endpointPicker(eppTestService(imp)))),
		string(toYAML(t, endpointPicker(eppTestService(func(s *v1alpha1.FleetInferenceService) { imp(s); monitor(s) }))))); diff != "" {
		t.Errorf("monitoring.gke without provider GKE renders objects:\n%s", diff)
	}

	svc := eppTestService(monitor)
	objs := endpointPicker(svc)
	before, after := eppCountKinds(plain), eppCountKinds(objs)
	want := map[string]int{"ServiceAccount": 1, "Secret": 1, "ClusterRole": 2, "ClusterRoleBinding": 2, "Role": 1, "RoleBinding": 1, "PodMonitoring": 1}
	for kind := range after {
		if got := after[kind] - before[kind]; got != want[kind] {
			t.Errorf("monitoring adds %d %s, want %d", got, kind, want[kind])
		}
	}
	// Whatever else is rendered is unchanged, the Deployment (its args) included.
	var rest []client.Object
	for _, o := range objs {
		if before[o.GetObjectKind().GroupVersionKind().Kind] > 0 && !strings.Contains(o.GetName(), "metrics-reader") {
			rest = append(rest, o)
		}
	}
	if diff := cmp.Diff(string(toYAML(t, plain)), string(toYAML(t, rest))); diff != "" {
		t.Errorf("monitoring changes the other objects (-without +with):\n%s", diff)
	}

	// The ServiceAccount comes before the token Secret naming it.
	iSA, iSecret := -1, -1
	for i, o := range objs {
		switch o.GetName() {
		case "llama-metrics-reader-sa":
			iSA = i
		case "llama-metrics-reader-secret":
			iSecret = i
		}
	}
	if iSA < 0 || iSecret < iSA {
		t.Errorf("metrics-reader ServiceAccount at %d, its Secret at %d: want the ServiceAccount first", iSA, iSecret)
	}

	// PodMonitoring: scrapes the EPP pods' metrics port with the reader's token.
	pms := eppFindGVK(objs, "PodMonitoring")
	if len(pms) != 1 || pms[0].GroupVersionKind() != GVKPodMonitoring {
		t.Fatalf("want one %v, got %d", GVKPodMonitoring, len(pms))
	}
	sel, _, _ := unstructured.NestedStringMap(pms[0].Object, "spec", "selector", "matchLabels")
	dep := eppFind[*appsv1.Deployment](t, objs, EndpointPickerName(svc))
	if diff := cmp.Diff(dep.Spec.Selector.MatchLabels, sel); diff != "" {
		t.Errorf("PodMonitoring selector differs from the EPP Deployment's (-deployment +podmonitoring):\n%s", diff)
	}
	eps, _, _ := unstructured.NestedSlice(pms[0].Object, "spec", "endpoints")
	ep := eps[0].(map[string]interface{})
	port := ep["port"].(string)
	if !slices.ContainsFunc(dep.Spec.Template.Spec.Containers[0].Ports, func(p corev1.ContainerPort) bool { return p.Name == port && p.ContainerPort == 9090 }) {
		t.Errorf("PodMonitoring scrapes port %q, which is not the EPP container's metrics port", port)
	}
	secretName, _, _ := unstructured.NestedString(ep, "authorization", "credentials", "secret", "name")
	secret := eppFind[*corev1.Secret](t, objs, secretName)
	if secret.Type != corev1.SecretTypeServiceAccountToken || secret.Annotations[corev1.ServiceAccountNameKey] != "llama-metrics-reader-sa" {
		t.Errorf("Secret %s: type %q annotations %v", secret.Name, secret.Type, secret.Annotations)
	}

	// Cluster-scoped objects: owned by svc, and distinct for the same name elsewhere.
	other := endpointPicker(eppTestService(func(s *v1alpha1.FleetInferenceService) {
		monitor(s)
		s.Namespace = "staging"
		s.UID = "6b1f0c2d-0000-4000-8000-000000000001"
	}))
	clusterNames := func(objs []client.Object) map[string]bool {
		names := map[string]bool{}
		for _, o := range objs {
			if o.GetNamespace() == "" {
				names[o.GetObjectKind().GroupVersionKind().Kind+" "+o.GetName()] = true
			}
		}
		return names
	}
	ours, theirs := clusterNames(objs), clusterNames(other)
	if len(ours) != 4 || len(theirs) != 4 {
		t.Fatalf("cluster-scoped objects: %v and %v, want four each", ours, theirs)
	}
	for k := range ours {
		if theirs[k] {
			t.Errorf("%s is rendered for llama in both serving and staging", k)
		}
		if !strings.Contains(k, "serving") {
			t.Errorf("%s does not name the namespace", k)
		}
	}
	for _, o := range objs {
		if o.GetNamespace() == "" && (!OwnedBy(o, svc) || o.GetLabels()[LabelNamespace] != "serving" || o.GetLabels()[LabelRole] != RoleMember) {
			t.Errorf("%s %s lacks the ownership labels: %v", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), o.GetLabels())
		}
	}
}

// TestEndpointPickerGKEMonitoringLongNames: with the longest service name (58) and
// namespace (63), every monitoring object's name is still valid for its kind (RBAC names
// are path segments, and the collector's RoleBinding holds colons) and every label
// value is valid.
func TestEndpointPickerGKEMonitoringLongNames(t *testing.T) {
	svc := eppTestService(func(s *v1alpha1.FleetInferenceService) {
		s.Name = "a" + strings.Repeat("-long-name", 5) + "-sevens"
		s.Namespace = "n" + strings.Repeat("-namespace", 6) + "-x"
		s.Spec.EndpointPicker.Monitoring = &v1alpha1.EndpointPickerMonitoring{GKE: true}
	})
	if len(svc.Name) != 58 || len(svc.Namespace) != 63 {
		t.Fatalf("test names have %d and %d characters", len(svc.Name), len(svc.Namespace))
	}
	for _, o := range endpointPicker(svc) {
		gvk := o.GetObjectKind().GroupVersionKind()
		var errs []string
		if gvk.Group == rbacv1.GroupName {
			errs = path.IsValidPathSegmentName(o.GetName())
			if len(o.GetName()) > 253 {
				errs = append(errs, "longer than 253 characters")
			}
		} else {
			errs = validation.IsDNS1123Subdomain(o.GetName())
		}
		if len(errs) > 0 {
			t.Errorf("%s name %q: %v", gvk.Kind, o.GetName(), errs)
		}
		for k, v := range o.GetLabels() {
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
				t.Errorf("%s %s label %s=%q: %v", gvk.Kind, o.GetName(), k, v, errs)
			}
		}
	}
}
