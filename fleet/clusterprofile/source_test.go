package clusterprofile

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	cpv1alpha1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/inferfleet/inferfleet/fleet"
)

func profile(name string, labels map[string]string, conds []metav1.Condition, props ...cpv1alpha1.Property) *cpv1alpha1.ClusterProfile {
	return &cpv1alpha1.ClusterProfile{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "inv", Labels: labels},
		Spec:   cpv1alpha1.ClusterProfileSpec{ClusterManager: cpv1alpha1.ClusterManager{Name: "m"}},
		Status: cpv1alpha1.ClusterProfileStatus{Conditions: conds, Properties: props}}
}

func cred(name, profile, consumer string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "inv",
		Labels: map[string]string{LabelConsumer: consumer, LabelProfile: profile}}, Data: data}
}

// TestDiscover: each profile is a registration with its labels, region and credentials,
// or unhealthy with what is missing.
func TestDiscover(t *testing.T) {
	kc := map[string][]byte{KubeconfigKey: []byte("kubeconfig")}
	down := []metav1.Condition{{Type: cpv1alpha1.ClusterConditionControlPlaneHealthy, Status: metav1.ConditionFalse, Reason: "Lost", Message: "no heartbeat"}}
	up := []metav1.Condition{{Type: cpv1alpha1.ClusterConditionControlPlaneHealthy, Status: metav1.ConditionTrue, Reason: "Ok"}}
	objs := []client.Object{
		profile("ready", map[string]string{fleet.RegionLabel: "us-east4", "tier": "gpu"}, up), cred("ready-c", "ready", "inferfleet", kc),
		profile("down", nil, down, cpv1alpha1.Property{Name: fleet.RegionLabel, Value: "europe-west3"}), cred("down-c", "down", "inferfleet", kc),
		profile("bare", nil, nil),
		profile("other-consumer", nil, nil), cred("oc", "other-consumer", "someone-else", kc),
		profile("twice", nil, nil), cred("t1", "twice", "inferfleet", kc), cred("t2", "twice", "inferfleet", kc),
		profile("empty", nil, nil), cred("e", "empty", "inferfleet", map[string][]byte{"kubeconfig": []byte("x")}),
	}
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	_ = cpv1alpha1.AddToScheme(scheme)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	regs, err := New(Options{Namespace: "inv", Reader: c}).Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]fleet.Registration{}
	for _, r := range regs {
		got[r.Name] = r
	}
	for name, want := range map[string]struct {
		region, unhealthy, kubeconfig string
	}{
		"ready":          {region: "us-east4", kubeconfig: "kubeconfig"},
		"down":           {region: "europe-west3", kubeconfig: "kubeconfig", unhealthy: "ControlPlaneHealthy=False (Lost): no heartbeat"},
		"bare":           {unhealthy: "no credentials for the hub: create a Secret in inv labelled x-k8s.io/cluster-inventory-consumer=inferfleet and x-k8s.io/cluster-profile=bare"},
		"other-consumer": {unhealthy: "no credentials for the hub"},
		"twice":          {unhealthy: "2 credential Secrets (t1, t2): keep one"},
		"empty":          {unhealthy: `credential Secret e has no "Config" key`},
	} {
		r, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s: not registered", name)
		case r.Region != want.region || string(r.Kubeconfig) != want.kubeconfig:
			t.Errorf("%s: region %q kubeconfig %q, want %q %q", name, r.Region, r.Kubeconfig, want.region, want.kubeconfig)
		case want.unhealthy == "" && r.Unhealthy != "", want.unhealthy != "" && !strings.Contains(r.Unhealthy, want.unhealthy):
			t.Errorf("%s: unhealthy %q, want %q", name, r.Unhealthy, want.unhealthy)
		}
	}
	if got["ready"].Labels["tier"] != "gpu" {
		t.Errorf("labels: %v", got["ready"].Labels)
	}
}
