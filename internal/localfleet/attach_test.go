package localfleet

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// TestAttach attaches clusters that run elsewhere (here two bare API servers; on a laptop,
// kind clusters): nothing of their control planes is started, CRDs are installed, kwok on
// this machine keeps the member's fake nodes Ready, and stopping the fleet stops only kwok.
func TestAttach(t *testing.T) {
	requireBins(t)
	hubEnv, memberEnv := testenv.Start(t, nil), testenv.Start(t, nil)
	hubKC, err := testenv.Kubeconfig(hubEnv.Config, "hub")
	if err != nil {
		t.Fatal(err)
	}
	memberKC, err := testenv.Kubeconfig(memberEnv.Config, "west")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	crds := testenv.CRDs()
	f, err := Start(ctx, Options{
		Dir:        t.TempDir(),
		Hub:        ClusterSpec{Name: "hub", Kubeconfig: hubKC},
		Members:    []ClusterSpec{{Name: "west", Region: "europe-west3", Kubeconfig: memberKC, Nodes: GPUNodes("europe-west3", "nvidia-h100-80gb", 1, 8)}},
		HubCRDDirs: crds, MemberCRDDirs: crds,
		Log: testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = f.Stop()
		}
	})
	west := f.Member("west")
	if west.Server != memberEnv.Config.Host {
		t.Errorf("attached member server %s, want %s", west.Server, memberEnv.Config.Host)
	}
	for _, p := range west.running() {
		if p.component != Kwok {
			t.Errorf("attached member runs %s; only kwok is ours", p.component)
		}
	}
	if len(f.Hub.running()) != 0 {
		t.Errorf("attached hub runs %d processes", len(f.Hub.running()))
	}
	if err := west.StopAPIServer(nil); err == nil {
		t.Error("StopAPIServer on an attached cluster should say it cannot")
	}

	cs, err := kubernetes.NewForConfig(memberEnv.Config)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 1 {
		t.Fatalf("nodes %v %v", nodes, err)
	}
	n := nodes.Items[0]
	ready := false
	for _, c := range n.Status.Conditions {
		ready = ready || (c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue)
	}
	if !ready || n.Status.Allocatable.Name("nvidia.com/gpu", "").Value() != 8 {
		t.Errorf("fake node not Ready with 8 GPUs: %+v", n.Status)
	}
	var crdCount int
	res, err := cs.Discovery().ServerResourcesForGroupVersion("inference.networking.k8s.io/v1")
	if err == nil {
		crdCount = len(res.APIResources)
	}
	if crdCount == 0 {
		t.Errorf("InferencePool CRD not installed in the attached member: %v", err)
	}
	reg := &corev1.Secret{}
	if err := hubEnv.Client.Get(ctx, client.ObjectKey{Namespace: fleet.RegistrationNamespace, Name: "west"}, reg); err != nil || reg.Labels[fleet.RegionLabel] != "europe-west3" {
		t.Errorf("member not registered in the attached hub: %v %v", err, reg.Labels)
	}

	if err := f.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if len(west.running()) != 0 {
		t.Error("kwok still running after Stop")
	}
	// The attached API servers were never ours: they still answer.
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		t.Errorf("attached API server gone after Stop: %v", err)
	}
}
