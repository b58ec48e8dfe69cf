package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/controllers/render"
	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/fleet/kind"
	"github.com/inferfleet/inferfleet/internal/localfleet"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// memberUser is the identity the hub has in every member: a user bound to
// config/rbac/member-role.yaml and to nothing else.
const memberUser = "inferfleet-member"

// TestRolesOnLocalFleet runs the hub as the ServiceAccount config/rbac binds in the config
// cluster, and in each member as a user bound only to config/rbac/member-role.yaml, through
// every write it makes: services routed by a multi-cluster GKE Gateway with its body-based
// router, by InferencePoolImports and by regional Gateways; token copies, LoRA adapters,
// objectives, the endpoint picker with leader election and Managed Prometheus, compute
// classes, pods that cannot be scheduled, a member's own HPA, the KV-cache reads, a failover
// drill, a cluster a discovery source registers and unregisters, leader election, and the
// deletion of everything. Every service gets where it should, the hub makes each kind of
// request its roles are for, and neither API server refuses one of its requests: the roles
// are wide enough for what the hub does. (TestRolesGrantWhatSecurityDocStates, in config,
// holds them to no more than docs/security.md states.)
func TestRolesOnLocalFleet(t *testing.T) {
	// kwok runs every model server at the test host's address, where a fake vLLM answers
	// the hub's KV-cache reads through the members' pod proxy.
	host := testenv.TestHost(t)
	vllm := host.Listen(t)
	lf := framework.StartLocalFleet(t, localfleet.DefaultMembers(), framework.Unregistered,
		func(o *localfleet.Options) { o.ModelServerIP = host.IP })
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "# TYPE %s gauge\n%s{model_name=\"m\"} 0.5\n", fleet.VLLMKVCacheMetric, fleet.VLLMKVCacheMetric)
	})}
	go func() { _ = srv.Serve(vllm) }()
	t.Cleanup(func() { _ = srv.Close() })
	ctx := context.Background()
	hub := lf.Hub.Client
	west, east := lf.Members["gke-west"].Client, lf.Members["gke-east"].Client
	requests := &requestLog{}

	if err := hub.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fleet.RegistrationNamespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	hubUser := installRBAC(ctx, t, hub, "role.yaml", "role_binding.yaml")
	kubeconfigs := map[string][]byte{}
	for name, m := range lf.Members {
		installRBAC(ctx, t, m.Client, "member-role.yaml")
		if err := m.Client.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: memberUser},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "inferfleet-member"},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: memberUser}},
		}); err != nil {
			t.Fatal(err)
		}
		kubeconfigs[name] = memberProxy(t, name, m.Local.RESTConfig(), requests)
	}
	// gke-west is registered by hand; the kind source registers gke-east itself, and
	// unregisters it at the end.
	if err := framework.RegisterMember(ctx, hub, "gke-west", "europe-west3", nil, kubeconfigs["gke-west"]); err != nil {
		t.Fatal(err)
	}
	kindFake := &kindClusters{clusters: map[string][]byte{"gke-east": kubeconfigs["gke-east"]}}

	cfg := lf.Fleet.Hub.RESTConfig()
	cfg.Impersonate = rest.ImpersonationConfig{UserName: hubUser}
	cfg.WrapTransport = requests.record("hub")
	runHubAs(t, cfg, app.HubOptions{
		MemberTimeout:     5 * time.Second,
		LeaderElect:       true,
		LeaderElectionNS:  fleet.RegistrationNamespace,
		KVCacheInterval:   2 * time.Second,
		Sources:           []string{app.SourceKubeconfig, app.SourceKind},
		DiscoveryInterval: 500 * time.Millisecond,
		Kind: kind.Options{Prefix: "gke-", Lister: kindFake,
			NodeRegion: func(context.Context, []byte) (string, error) { return "us-east4", nil }},
	})

	// Every service lives in a namespace the members do not have, which the hub creates
	// there and deletes with the last of them.
	const ns = "team-a"
	if err := hub.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	if err := hub.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hf-token", Namespace: ns, Labels: map[string]string{v1alpha1.LabelCopyToMembers: "true"}},
		Data: map[string][]byte{"token": []byte("hf_e2e")}}); err != nil {
		t.Fatal(err)
	}
	token := &v1alpha1.SecretKeyRef{Name: "hf-token", Key: "token"}
	inNamespace := func(svc *v1alpha1.FleetInferenceService, name string) *v1alpha1.FleetInferenceService {
		svc.Name, svc.Namespace = name, ns
		svc.Spec.Model.Server.HuggingFaceTokenSecretRef = token
		svc.Spec.Model.Server.Port = int32(vllm.Addr().(*net.TCPAddr).Port)
		return svc
	}
	// Multi-cluster GKE Gateway with its body-based router in the config cluster; an
	// endpoint picker with leader election and Managed Prometheus in both members.
	gke := inNamespace(loadSample(t, "fleet_v1alpha1_two-region-h100.yaml"), "llama")
	gke.Spec.Replicas = 4
	gke.Spec.Gateway.BodyBasedRouting = true
	gke.Spec.EndpointPicker.Replicas = 2
	gke.Spec.EndpointPicker.Monitoring = &v1alpha1.EndpointPickerMonitoring{GKE: true}
	// The open-source path: InferencePoolImports in the config cluster, the pools' status
	// in the members.
	oss := inNamespace(loadSample(t, "fleet_v1alpha1_two-region-h100.yaml"), "llama-oss")
	oss.Spec.Replicas = 2
	oss.Spec.Gateway = v1alpha1.GatewaySpec{Provider: v1alpha1.ProviderInferencePoolImport, Name: "oss-gateway", ClassName: "istio"}
	oss.Spec.Balancing = v1alpha1.BalancingSpec{}
	oss.Spec.Objectives = nil // the names are llama's, in the same namespace
	// The drill below waits for the failback.
	oss.Spec.Placement.Failover.FailbackAfter = &metav1.Duration{Duration: 5 * time.Second}
	// A regional Gateway, its routes and body-based router in gke-west.
	lora := inNamespace(onCluster(loadSample(t, "fleet_v1alpha1_h100-lora-regional.yaml"), "gke-west"), "lora")
	lora.Spec.Replicas = 2
	lora.Spec.Gateway.BodyBasedRouting = true
	for i := range lora.Spec.Objectives {
		lora.Spec.Objectives[i].Name = "lora-" + lora.Spec.Objectives[i].Name
	}
	// A compute class in gke-east, whose accelerators gke-east does not have: its pods
	// cannot be scheduled, and the hub reads their events.
	fungible := inNamespace(onCluster(loadSample(t, "fleet_v1alpha1_compute-class.yaml"), "gke-east"), "fungible")
	fungible.Spec.Replicas = 1
	services := []*v1alpha1.FleetInferenceService{gke, oss, lora, fungible}
	for _, s := range services {
		if err := hub.Create(ctx, s); err != nil {
			t.Fatalf("create %s: %v", s.Name, err)
		}
	}

	t.Run("every service gets where it should", func(t *testing.T) {
		for _, s := range []*v1alpha1.FleetInferenceService{gke, oss, lora} {
			framework.Eventually(t, 3*time.Minute, s.Name+" Ready", func() error {
				return serviceReady(getService(ctx, t, hub, client.ObjectKeyFromObject(s)))
			})
		}
		framework.Eventually(t, time.Minute, "fungible synced, its pods unschedulable", func() error {
			st := clusterStatus(getService(ctx, t, hub, client.ObjectKeyFromObject(fungible)), "gke-east")
			if st.UnschedulableReplicas != 1 || !strings.Contains(st.Message+st.HealthReason, "unschedulable") {
				return fmt.Errorf("gke-east status %+v", st)
			}
			return nil
		})
		framework.Eventually(t, 30*time.Second, "the config cluster's and the members' objects", func() error {
			for _, o := range []struct {
				c                             client.Client
				where, apiVersion, kind, name string
				namespaced                    bool
			}{
				{hub, "hub", "gateway.networking.k8s.io/v1", "Gateway", "cross-region-gateway", true},
				{hub, "hub", "networking.gke.io/v1", "GCPRoutingExtension", render.BodyBasedRouterName("cross-region-gateway"), true},
				{hub, "hub", "apps/v1", "Deployment", render.BodyBasedRouterName("cross-region-gateway"), true},
				{hub, "hub", "inference.networking.x-k8s.io/v1alpha1", "InferencePoolImport", "llama-oss", true},
				{west, "gke-west", "v1", "Secret", render.TokenSecretName(gke), true},
				{west, "gke-west", "rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "llama-" + ns + "-epp", false},
				{west, "gke-west", "monitoring.googleapis.com/v1", "PodMonitoring", gke.Name, true},
				{west, "gke-west", "gateway.networking.k8s.io/v1", "Gateway", "inference-gateway", true},
				{east, "gke-east", "cloud.google.com/v1", "ComputeClass", "vllm-fallback", false},
			} {
				u := &unstructured.Unstructured{}
				u.SetAPIVersion(o.apiVersion)
				u.SetKind(o.kind)
				key := client.ObjectKey{Name: o.name}
				if o.namespaced {
					key.Namespace = ns
				}
				if err := o.c.Get(ctx, key, u); err != nil {
					return fmt.Errorf("%s %s %s: %w", o.where, o.kind, key, err)
				}
			}
			return nil
		})
	})

	t.Run("a member's own HPA keeps the replicas it set", func(t *testing.T) {
		key := client.ObjectKeyFromObject(gke)
		if err := west.Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Name: gke.Name, Namespace: ns},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: gke.Name},
				MinReplicas:    ptr.To[int32](1), MaxReplicas: 4,
				Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
					Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](80)}}}},
			},
		}); err != nil {
			t.Fatal(err)
		}
		d, err := modelDeployment(ctx, west, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := west.SubResource("scale").Update(ctx, d, client.WithSubResourceBody(&autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: 3}}),
			client.FieldOwner("horizontal-pod-autoscaler")); err != nil {
			t.Fatal(err)
		}
		framework.Eventually(t, 30*time.Second, "gke-west's entry names the HPA", func() error {
			if st := clusterStatus(getService(ctx, t, hub, key), "gke-west"); st.ScaledBy != "HorizontalPodAutoscaler/"+gke.Name {
				return fmt.Errorf("gke-west status %+v", st)
			}
			return nil
		})
	})

	t.Run("a failover drill runs to the end", func(t *testing.T) {
		drill := &v1alpha1.FailoverDrill{
			ObjectMeta: metav1.ObjectMeta{Name: "drill-gke-east", Namespace: ns},
			Spec:       v1alpha1.FailoverDrillSpec{Cluster: "gke-east", Service: oss.Name, Timeout: &metav1.Duration{Duration: 90 * time.Second}},
		}
		if err := hub.Create(ctx, drill); err != nil {
			t.Fatal(err)
		}
		framework.Eventually(t, 4*time.Minute, "drill succeeded", func() error {
			if err := hub.Get(ctx, client.ObjectKeyFromObject(drill), drill); err != nil {
				return err
			}
			if drill.Status.Phase != v1alpha1.DrillSucceeded {
				return fmt.Errorf("phase %q: %s", drill.Status.Phase, drill.Status.Message)
			}
			return nil
		})
		if err := hub.Delete(ctx, drill); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("deleting the services empties the config cluster and the members", func(t *testing.T) {
		for _, s := range services {
			if err := hub.Delete(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		framework.Eventually(t, time.Minute, "services gone", func() error {
			var list v1alpha1.FleetInferenceServiceList
			if err := hub.List(ctx, &list, client.InNamespace(ns)); err != nil {
				return err
			}
			var left []string
			for _, s := range list.Items {
				left = append(left, fmt.Sprintf("%s (%v)", s.Name, s.Status.Conditions))
			}
			if len(left) > 0 {
				return fmt.Errorf("services left: %s", strings.Join(left, "; "))
			}
			return nil
		})
		framework.Eventually(t, time.Minute, "the hub's namespace deleted in the members", func() error {
			for name, m := range lf.Members {
				n := &corev1.Namespace{}
				err := m.Client.Get(ctx, client.ObjectKey{Name: ns}, n)
				if err == nil && n.DeletionTimestamp.IsZero() {
					var ds appsv1.DeploymentList
					_ = m.Client.List(ctx, &ds, client.InNamespace(ns))
					var left []string
					for _, d := range ds.Items {
						left = append(left, fmt.Sprintf("%s %v", d.Name, d.Labels))
					}
					return fmt.Errorf("%s: namespace %s still there, with Deployments %v", name, ns, left)
				}
				if err != nil && !apierrors.IsNotFound(err) {
					return err
				}
			}
			return nil
		})
	})

	t.Run("a cluster that leaves its source is unregistered", func(t *testing.T) {
		kindFake.remove("gke-east")
		framework.Eventually(t, 30*time.Second, "gke-east unregistered", func() error {
			if _, err := registration(ctx, hub, "gke-east"); !apierrors.IsNotFound(err) {
				return fmt.Errorf("gke-east registration still there (%v)", err)
			}
			return nil
		})
	})

	t.Run("the hub made each kind of request its roles are for, and each was answered", func(t *testing.T) {
		for _, want := range exercised {
			if !slices.ContainsFunc(requests.all(), want.matches) {
				t.Errorf("no %s request %s %s was answered %s (%s)", want.side, want.verb, want.resource, want.codeText(), want.why)
			}
		}
	})

	t.Run("no request of the hub was refused", func(t *testing.T) {
		refused := map[string]int{}
		for _, r := range requests.all() {
			if r.Refused {
				refused[fmt.Sprintf("%s refused %s %s in namespace %q: %s", r.Cluster, r.Verb, r.Resource, r.Namespace, r.Denial)]++
			}
		}
		for _, k := range slices.Sorted(maps.Keys(refused)) {
			t.Errorf("%s (%d times)", k, refused[k])
		}
	})
	if t.Failed() {
		t.Logf("the hub's requests (side, verb, resource, status, count):\n%s", requests.summary())
	}
}

// exercise is a kind of request the scenario must have seen answered: on the hub or in a
// member, a verb on a resource (see apiRequest), with a 2xx status (or the one given).
type exercise struct {
	side, verb, resource string
	code                 int
	why                  string
}

func (e exercise) matches(r apiRequest) bool {
	if (r.Cluster == "hub") != (e.side == "hub") || r.Verb != e.verb || r.Resource != e.resource {
		return false
	}
	if e.code != 0 {
		return r.Code == e.code
	}
	return r.Code >= 200 && r.Code < 300
}

func (e exercise) codeText() string {
	if e.code != 0 {
		return fmt.Sprint(e.code)
	}
	return "2xx"
}

// exercised are the requests TestRolesOnLocalFleet makes the hub send, one or more for each
// permission of its roles it uses itself: the writes (server-side apply is a patch, which
// answers 201 when it creates) and deletions of every kind it keeps, and its reads that are
// not of its own objects.
var exercised = func() []exercise {
	var out []exercise
	keep := func(side, why string, resources ...string) {
		for _, r := range resources {
			out = append(out, exercise{side, "patch", r, 201, why}, exercise{side, "delete", r, 0, why})
		}
	}
	keep("hub", "a multi-cluster Gateway and the routes to the imported pools",
		"gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io",
		"healthcheckpolicies.networking.gke.io", "gcpbackendpolicies.networking.gke.io",
		"inferencepoolimports.inference.networking.x-k8s.io")
	keep("hub", "the body-based router beside the multi-cluster Gateway",
		"serviceaccounts", "services", "deployments.apps", "roles.rbac.authorization.k8s.io",
		"rolebindings.rbac.authorization.k8s.io", "gcproutingextensions.networking.gke.io")
	keep("member", "what a service runs in a member",
		"namespaces", "secrets", "configmaps", "serviceaccounts", "services", "deployments.apps",
		"roles.rbac.authorization.k8s.io", "rolebindings.rbac.authorization.k8s.io",
		"inferencepools.inference.networking.k8s.io", "inferenceobjectives.inference.networking.x-k8s.io",
		"autoscalingmetrics.autoscaling.gke.io", "healthcheckpolicies.networking.gke.io",
		"gcpbackendpolicies.networking.gke.io")
	keep("member", "a regional Gateway, its routes and body-based router",
		"gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io",
		"gcproutingextensions.networking.gke.io")
	keep("member", "a compute class", "computeclasses.cloud.google.com")
	keep("member", "the endpoint picker's Managed Prometheus objects",
		"clusterroles.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io",
		"podmonitorings.monitoring.googleapis.com")
	return append(out,
		exercise{"hub", "patch", "fleetinferenceservices.fleet.inferfleet.dev", 0, "finalizers and placement annotations"},
		exercise{"hub", "update", "fleetinferenceservices/status.fleet.inferfleet.dev", 0, "status"},
		exercise{"hub", "patch", "failoverdrills.fleet.inferfleet.dev", 0, "a drill's finalizer"},
		exercise{"hub", "update", "failoverdrills/status.fleet.inferfleet.dev", 0, "a drill's report"},
		exercise{"hub", "update", "inferencepoolimports/status.inference.networking.x-k8s.io", 0, "the exporting clusters"},
		exercise{"hub", "patch", "secrets", 200, "a registration's reachability annotations"},
		exercise{"hub", "patch", "secrets", 201, "a registration a discovery source found"},
		exercise{"hub", "delete", "secrets", 0, "a registration whose cluster left its source"},
		exercise{"hub", "create", "events.events.k8s.io", 0, "events on services and drills"},
		exercise{"hub", "create", "leases.coordination.k8s.io", 0, "leader election"},
		exercise{"hub", "update", "leases.coordination.k8s.io", 0, "leader election"},
		exercise{"member", "update", "inferencepools/status.inference.networking.k8s.io", 0, "the pool's Exported condition"},
		exercise{"member", "get", "pods/proxy", 0, "the model servers' KV-cache use"},
		exercise{"member", "list", "pods", 0, "model servers to read, and those that cannot be scheduled"},
		exercise{"member", "list", "events", 0, "the cluster autoscaler's word on pods that cannot be scheduled"},
		exercise{"member", "list", "horizontalpodautoscalers.autoscaling", 0, "a member's own HPA of a model Deployment"},
		exercise{"member", "list", "inferencepoolimports.inference.networking.x-k8s.io", 0, "pruning beside a regional Gateway"},
	)
}()

// installRBAC creates the objects of files in config/rbac and returns the user the
// ServiceAccount of their bindings authenticates as, if any.
func installRBAC(ctx context.Context, t *testing.T, c client.Client, files ...string) string {
	t.Helper()
	var user string
	for _, f := range files {
		raw, err := os.ReadFile(filepath.Join(framework.Root(), "config", "rbac", f))
		if err != nil {
			t.Fatal(err)
		}
		docs := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := docs.Decode(&u.Object); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if err := c.Create(ctx, u); err != nil {
				t.Fatalf("install %s %s: %v", u.GetKind(), u.GetName(), err)
			}
			subjects, _, _ := unstructured.NestedSlice(u.Object, "subjects")
			for _, s := range subjects {
				s := s.(map[string]any)
				if s["kind"] == rbacv1.ServiceAccountKind {
					user = fmt.Sprintf("system:serviceaccount:%s:%s", s["namespace"], s["name"])
				}
			}
		}
	}
	return user
}

// runHubAs runs the hub manager in-process with cfg as its identity in the config cluster,
// until the test ends.
func runHubAs(t *testing.T, cfg *rest.Config, o app.HubOptions) {
	t.Helper()
	o.MetricsAddr, o.ProbeAddr = "0", "0"
	startHubInProcess(t, cfg, o)
}

// impersonating is cfg acting as user, as the API server's authorizer sees them.
func impersonating(cfg *rest.Config, user string) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: user}
	return c
}

// startHubInProcess runs the hub manager in-process with cfg and o (its endpoints as o says) until
// the test ends.
func startHubInProcess(t *testing.T, cfg *rest.Config, o app.HubOptions) {
	t.Helper()
	o.SeveralPerProcess = true
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := app.NewHub(ctx, cfg, o)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		framework.ManagerStopped(t, "hub manager", mgr.Start(ctx))
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// memberProxy serves a member's API to the hub as memberUser: a TLS endpoint that passes
// every request on with the member's admin credentials impersonating memberUser, so the
// member's RBAC decides as it would for that user's own credentials, and records it. It
// returns the kubeconfig that reaches the member through it.
func memberProxy(t *testing.T, name string, admin *rest.Config, requests *requestLog) []byte {
	t.Helper()
	cfg := rest.CopyConfig(admin)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: memberUser}
	cfg.WrapTransport = requests.record(name)
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Header.Del("Authorization")
		},
		Transport:     rt,
		FlushInterval: -1, // watches stream
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	srv := httptest.NewUnstartedServer(proxy)
	srv.StartTLS()
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{Server: srv.URL,
		CertificateAuthorityData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{} // the proxy authenticates
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	kc.CurrentContext = name
	out, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// apiRequest is one request to an API server, with the attributes RBAC authorizes it on.
type apiRequest struct {
	Cluster   string
	Verb      string
	Resource  string // resource[/subresource][.group], or the path of a non-resource URL
	Namespace string
	Code      int
	// Refused: the API server did not authenticate or authorize the request (not a 403 that
	// an admission plugin or a proxied pod answered).
	Refused bool
	Denial  string // the API server's message, when it refused
}

// requestLog records the requests an identity makes and what the API server answered.
type requestLog struct {
	mu   sync.Mutex
	reqs []apiRequest
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// record is a rest.Config WrapTransport that logs each answered request to cluster.
func (l *requestLog) record(cluster string) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(r)
			if err != nil {
				return resp, err // no answer: nothing was authorized or refused
			}
			req := rbacRequest(r)
			req.Cluster, req.Code = cluster, resp.StatusCode
			if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				resp.Body = io.NopCloser(bytes.NewReader(body))
				var st metav1.Status
				_ = json.Unmarshal(body, &st)
				req.Denial = st.Message
				// The authorizer's refusal reads `User "..." cannot <verb> ...`; RBAC's own, of a
				// Role or binding that grants more than its writer holds, `... is attempting to
				// grant RBAC permissions not currently held`.
				req.Refused = resp.StatusCode == http.StatusUnauthorized || st.Reason == metav1.StatusReasonForbidden &&
					(strings.Contains(st.Message, `" cannot `) || strings.Contains(st.Message, "attempting to grant RBAC permissions"))
			}
			l.mu.Lock()
			l.reqs = append(l.reqs, req)
			l.mu.Unlock()
			return resp, nil
		})
	}
}

func (l *requestLog) all() []apiRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reqs)
}

// summary counts the requests by cluster, verb, resource and answer.
func (l *requestLog) summary() string {
	counts := map[string]int{}
	for _, r := range l.all() {
		who := "member"
		if r.Cluster == "hub" {
			who = "hub"
		}
		counts[fmt.Sprintf("%-6s %-16s %-60s %d", who, r.Verb, r.Resource, r.Code)]++
	}
	var lines []string
	for k, n := range counts {
		lines = append(lines, fmt.Sprintf("%s x%d", k, n))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// rbacRequest reads the RBAC attributes of a request from its method and path, as the API
// server's request info does.
func rbacRequest(r *http.Request) apiRequest {
	var out apiRequest
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var group string
	switch {
	case len(parts) > 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) > 3 && parts[0] == "apis":
		group, parts = parts[1], parts[3:]
	default:
		out.Verb, out.Resource = strings.ToLower(r.Method), r.URL.Path
		return out
	}
	if parts[0] == "namespaces" && len(parts) > 2 {
		out.Namespace, parts = parts[1], parts[2:]
	}
	resource, name := parts[0], ""
	if len(parts) > 1 {
		name = parts[1]
	}
	if len(parts) > 2 {
		resource += "/" + parts[2]
	}
	if group != "" {
		resource += "." + group
	}
	out.Resource = resource
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1":
			out.Verb = "watch"
		case name == "":
			out.Verb = "list"
		default:
			out.Verb = "get"
		}
	case http.MethodPost:
		out.Verb = "create"
	case http.MethodPut:
		out.Verb = "update"
	case http.MethodPatch:
		out.Verb = "patch"
	case http.MethodDelete:
		out.Verb = "delete"
		if name == "" {
			out.Verb = "deletecollection"
		}
	default:
		out.Verb = strings.ToLower(r.Method)
	}
	return out
}
