package fleet

import (
	"maps"
	"testing"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

func TestRegistrationSecret(t *testing.T) {
	labels := map[string]string{"tier": "gpu", RegionLabel: "elsewhere", KubeconfigLabel: "false"}
	s := RegistrationSecret("gke-west", RegistrationNamespace, "europe-west3", []byte("kc"), labels)
	if s.Name != "gke-west" || s.Namespace != RegistrationNamespace || s.Type != "Opaque" {
		t.Errorf("secret %s/%s of type %q", s.Namespace, s.Name, s.Type)
	}
	if want := map[string]string{"tier": "gpu", RegionLabel: "europe-west3", KubeconfigLabel: "true"}; !maps.Equal(s.Labels, want) {
		t.Errorf("labels %v, want %v", s.Labels, want)
	}
	if string(s.Data[KubeconfigKey]) != "kc" || !IsRegistration(s.Labels) {
		t.Errorf("data %v", s.Data)
	}
	if labels[RegionLabel] != "elsewhere" {
		t.Error("the caller's labels were modified")
	}

	// Without region or kubeconfig (a source that connects to the cluster itself).
	s = RegistrationSecret("hub-member", "ns", "", nil, nil)
	if len(s.Labels) != 0 || s.Data != nil {
		t.Errorf("labels %v, data %v", s.Labels, s.Data)
	}
}

// TestClusterFromSecretCordon: a registration Secret cordons its cluster with
// AnnotationCordoned only; the service-level cordon key means nothing there.
func TestClusterFromSecretCordon(t *testing.T) {
	for _, tc := range []struct {
		annotations map[string]string
		want        bool
	}{
		{nil, false},
		{map[string]string{AnnotationCordoned: "ops: region maintenance"}, true},
		{map[string]string{AnnotationCordoned: ""}, true},
		{map[string]string{v1alpha1.AnnotationCordon: "west"}, false},
	} {
		s := RegistrationSecret("west", RegistrationNamespace, "europe-west3", []byte("kubeconfig"), nil)
		s.Annotations = tc.annotations
		if got := ClusterFromSecret(s).Cordoned; got != tc.want {
			t.Errorf("annotations %v: cordoned %v, want %v", tc.annotations, got, tc.want)
		}
	}
}
