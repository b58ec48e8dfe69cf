package fleet

import (
	"maps"
	"testing"
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
