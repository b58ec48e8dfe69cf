package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// TestStatusAndClusters runs `fleetctl status` and `fleetctl clusters` against a real API
// server holding a service with per-cluster status and two registrations.
func TestStatusAndClusters(t *testing.T) {
	env := framework.Start(t, framework.CRDs())
	ctx := context.Background()
	kcPath := testenv.KubeconfigFile(t, env.Config, "hub")
	svc := sampleService(t)
	if err := env.Client.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	now := metav1.NewTime(time.Now().Add(-time.Minute))
	svc.Status = v1alpha1.FleetInferenceServiceStatus{
		ReplicasReady: "3/6", ClustersReady: "1/2",
		Clusters: []v1alpha1.ClusterStatus{
			{Name: "gke-east", Region: "us-east4", Reachable: true, DesiredReplicas: 3, ReadyReplicas: 3, Exported: true, LastSyncTime: &now, Health: v1alpha1.Healthy,
				ScaledBy: "HorizontalPodAutoscaler/vllm-llama3-8b-instruct"},
			{Name: "gke-west", Region: "europe-west3", DesiredReplicas: 0, Health: v1alpha1.Unreachable, FailedOver: true, Message: "unreachable: connection refused"},
		},
		Placement: &v1alpha1.PlacementStatus{Clusters: []v1alpha1.ClusterDecision{
			{Name: "gke-east", Replicas: 3, Reason: v1alpha1.PlacementCovering, Borrowed: 1},
			{Name: "gke-west", Replicas: 0, Reason: v1alpha1.PlacementFailedOver},
		}},
		Autoscaling: &v1alpha1.AutoscalingStatus{DesiredReplicas: 6, RecommendedReplicas: 2, Reason: "Stabilizing",
			Message: "WaitingRequests: 1 per server against a target of 5 (2 reporting); held at 6 by the scale-down stabilization window"},
		Conditions: []metav1.Condition{{Type: v1alpha1.ConditionFailingOver, Status: metav1.ConditionTrue, Reason: "ClusterUnhealthy", Message: "share moved away from gke-west", LastTransitionTime: now}},
	}
	if err := env.Client.Status().Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if err := framework.RegisterMember(ctx, env.Client, "gke-west", "europe-west3", map[string]string{"tier": "gpu"}, []byte("x")); err != nil {
		t.Fatal(err)
	}
	s := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: fleet.RegistrationNamespace, Name: "gke-west"}, s); err != nil {
		t.Fatal(err)
	}
	s.Annotations = map[string]string{fleet.AnnotationReachable: "false", fleet.AnnotationReachableSince: now.UTC().Format(time.RFC3339), fleet.AnnotationReachReason: "readyz: connection refused"}
	if err := env.Client.Update(ctx, s); err != nil {
		t.Fatal(err)
	}

	runWith := func(kubeconfig string, args ...string) string {
		t.Helper()
		var out bytes.Buffer
		cmd := newRootCmd()
		cmd.SetOut(&out)
		cmd.SetArgs(append(args, "--kubeconfig", kubeconfig))
		if err := cmd.ExecuteContext(ctx); err != nil {
			t.Fatalf("fleetctl %v --kubeconfig %s: %v", args, kubeconfig, err)
		}
		return out.String()
	}
	run := func(args ...string) string { t.Helper(); return runWith(kcPath, args...) }
	table := run("status", "default/vllm-llama3-8b-instruct")
	for _, want := range []string{"default/vllm-llama3-8b-instruct  ready=Unknown  replicas=3/6  clusters=1/2",
		"gke-east  us-east4", "Healthy", "3/3", "1m",
		"gke-west  europe-west3", "Unreachable (failed over)", "0/0", "unreachable: connection refused",
		"FailingOver=True ClusterUnhealthy: share moved away from gke-west",
		"  autoscaling: 6 (recommended 2) Stabilizing: WaitingRequests: 1 per server against a target of 5 (2 reporting); held at 6"} {
		if !strings.Contains(table, want) {
			t.Errorf("status table lacks %q:\n%s", want, table)
		}
	}
	if !regexp.MustCompile(`gke-east .* ago +replicas set by HorizontalPodAutoscaler/vllm-llama3-8b-instruct; 1 borrowed from clusters out of capacity\n`).MatchString(table) {
		t.Errorf("gke-east's message should name the member's HPA and its borrowed replica:\n%s", table)
	}
	if !regexp.MustCompile(`gke-east .* 1m[0-9]+s ago`).MatchString(table) {
		t.Errorf("last sync of gke-east should read about a minute ago:\n%s", table)
	}
	// --kubeconfig takes a path list, merged like $KUBECONFIG, as every hub command does.
	other := writeKubeconfig(t, "", "other")
	list := other + string(filepath.ListSeparator) + kcPath
	// The same table but for the seconds of "ago" (and so the column widths).
	ago, spaces := regexp.MustCompile(`[0-9hms]+ ago`), regexp.MustCompile(` +`)
	norm := func(s string) string { return spaces.ReplaceAllString(ago.ReplaceAllString(s, "ago"), " ") }
	same := func(a, b string) bool { return norm(a) == norm(b) }
	if got := runWith(list, "status", "default/vllm-llama3-8b-instruct"); !same(got, table) {
		t.Errorf("status --kubeconfig %s:\n%s\nwant the same table as with %s alone:\n%s", list, got, kcPath, table)
	}
	if got := runWith(list, "status", "default/vllm-llama3-8b-instruct", "--context", "hub"); !same(got, table) {
		t.Errorf("status --kubeconfig %s --context hub:\n%s", list, got)
	}
	var svcs struct {
		Items []v1alpha1.FleetInferenceService
	}
	if err := json.Unmarshal([]byte(run("status", "-o", "json")), &svcs); err != nil || len(svcs.Items) != 1 || len(svcs.Items[0].Status.Clusters) != 2 {
		t.Errorf("status -o json: %v %+v", err, svcs)
	}
	// A cluster GKE Hub discovery registered, and a Secret that registers nothing.
	for _, sec := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "gke-central", Namespace: fleet.RegistrationNamespace,
			Labels: map[string]string{fleet.SourceLabel: "gkehub", fleet.RegionLabel: "us-central1"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "not-a-cluster", Namespace: fleet.RegistrationNamespace}},
	} {
		if err := env.Client.Create(ctx, sec); err != nil {
			t.Fatal(err)
		}
	}
	clusters := run("clusters")
	if !regexp.MustCompile(`gke-central +gkehub +us-central1 +unknown`).MatchString(clusters) || strings.Contains(clusters, "not-a-cluster") {
		t.Errorf("clusters table should list the discovered cluster and no other Secret:\n%s", clusters)
	}
	if !regexp.MustCompile(`gke-west +kubeconfig +europe-west3`).MatchString(clusters) || !strings.Contains(clusters, "false") ||
		!strings.Contains(clusters, "tier=gpu") || !strings.Contains(clusters, "readyz: connection refused") {
		t.Errorf("clusters table:\n%s", clusters)
	}
}
