package framework

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/fleet/kind"
	"github.com/inferfleet/inferfleet/internal/localfleet"
)

func TestKindConfig(t *testing.T) {
	member := KindConfig(localfleet.DefaultMember("gke-west", "europe-west3"), false, KindHost{})
	if member.Name != "inferfleet-e2e-gke-west" || len(member.Nodes) != 1 {
		t.Fatalf("member config %+v", member)
	}
	n := member.Nodes[0]
	if n.Role != "control-plane" || n.Labels[fleet.RegionLabel] != "europe-west3" {
		t.Errorf("node %+v: want a control plane labelled with the region", n)
	}
	// The kind source reads the region where this config puts it.
	if got := kind.RegionOf(member.Name, KindPrefix, n.Labels[fleet.RegionLabel]); got != "europe-west3" {
		t.Errorf("kind source region %q", got)
	}
	if len(member.KubeadmConfigPatches) != 1 {
		t.Fatalf("patches %v", member.KubeadmConfigPatches)
	}
	var patch struct {
		Kind             string `json:"kind"`
		NodeRegistration struct {
			Taints []struct{ Key, Value, Effect string } `json:"taints"`
		} `json:"nodeRegistration"`
	}
	if err := yaml.UnmarshalStrict([]byte(member.KubeadmConfigPatches[0]), &patch); err != nil {
		t.Fatalf("kubeadm patch is not YAML: %v", err)
	}
	if patch.Kind != "InitConfiguration" || len(patch.NodeRegistration.Taints) != 2 || patch.NodeRegistration.Taints[0].Key != realNodeTaint ||
		patch.NodeRegistration.Taints[0].Effect != "NoSchedule" {
		t.Errorf("patch %+v: the kind node must be tainted NoSchedule", patch)
	}
	// kind removes the control-plane taint after init and fails if it is not there.
	if cp := patch.NodeRegistration.Taints[1]; cp.Key != "node-role.kubernetes.io/control-plane" || cp.Effect != "NoSchedule" {
		t.Errorf("patch %+v: the control-plane taint must stay in the list for kind to remove", patch)
	}
	raw, err := yaml.Marshal(member)
	if err != nil || !strings.Contains(string(raw), "apiVersion: kind.x-k8s.io/v1alpha4") {
		t.Errorf("config YAML %s %v", raw, err)
	}
	hub := KindConfig(localfleet.ClusterSpec{Name: "hub"}, true, KindHost{})
	if hub.Name != "inferfleet-e2e-hub" || len(hub.KubeadmConfigPatches) != 0 || len(hub.Nodes[0].Labels) != 0 {
		t.Errorf("hub config %+v: untainted, no region", hub)
	}
}

// TestKindConfigForHost: what a machine needs reaches every cluster's config: the node
// image, the kubelet's consent to cgroup v1, and the capability shim for the nodes' pods.
func TestKindConfigForHost(t *testing.T) {
	host := KindHost{NodeImage: "inferfleet/kind-node:v1.36.3", CgroupV1: true, CapShim: "/work/bin/runc-capshim"}
	for _, cfg := range []*v1alpha4.Cluster{
		KindConfig(localfleet.DefaultMember("gke-west", "europe-west3"), false, host),
		KindConfig(localfleet.ClusterSpec{Name: "hub"}, true, host),
	} {
		n := cfg.Nodes[0]
		if n.Image != host.NodeImage {
			t.Errorf("%s: node image %q, want %q", cfg.Name, n.Image, host.NodeImage)
		}
		var kubelet struct {
			Kind         string `json:"kind"`
			FailCgroupV1 *bool  `json:"failCgroupV1"`
		}
		found := false
		for _, p := range cfg.KubeadmConfigPatches {
			if err := yaml.Unmarshal([]byte(p), &kubelet); err == nil && kubelet.Kind == "KubeletConfiguration" {
				found = kubelet.FailCgroupV1 != nil && !*kubelet.FailCgroupV1
			}
		}
		if !found {
			t.Errorf("%s: no KubeletConfiguration patch with failCgroupV1: false in %q", cfg.Name, cfg.KubeadmConfigPatches)
		}
		if len(n.ExtraMounts) != 1 || n.ExtraMounts[0].HostPath != host.CapShim || n.ExtraMounts[0].ContainerPath != capShimInNode || !n.ExtraMounts[0].Readonly {
			t.Errorf("%s: mounts %+v, want the shim read-only at %s", cfg.Name, n.ExtraMounts, capShimInNode)
		}
		if len(cfg.ContainerdConfigPatches) != 1 || !strings.Contains(cfg.ContainerdConfigPatches[0], `runtimes.runc.options]`) ||
			!strings.Contains(cfg.ContainerdConfigPatches[0], `BinaryName = "`+capShimInNode+`"`) {
			t.Errorf("%s: containerd patches %q, want runc's BinaryName set to the shim", cfg.Name, cfg.ContainerdConfigPatches)
		}
	}
	// A machine that needs none of it changes nothing: kind's defaults hold.
	plain := KindConfig(localfleet.ClusterSpec{Name: "hub"}, true, KindHost{})
	if len(plain.ContainerdConfigPatches) != 0 || len(plain.Nodes[0].ExtraMounts) != 0 || !strings.HasPrefix(plain.Nodes[0].Image, "kindest/node:") {
		t.Errorf("plain host config %+v", plain)
	}
}

// TestNoContainerEngine: without Docker, Podman or nerdctl the kind fleet says so, and
// `make e2e-kind` exits non-zero with the reason before building anything.
func TestNoContainerEngine(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := ContainerEngine(); err == nil || !strings.Contains(err.Error(), "container engine") {
		t.Errorf("ContainerEngine() = %v, want the missing engine named", err)
	}
	cmd := exec.Command("/bin/bash", filepath.Join(Root(), "hack", "e2e-kind.sh"))
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 3 {
		t.Errorf("e2e-kind.sh exit %d (%v), want 3", code, err)
	}
	if !strings.Contains(string(out), "no container engine") || !strings.Contains(string(out), "make test") {
		t.Errorf("e2e-kind.sh said:\n%s", out)
	}
}

// TestHubManifests applies the manifests the kind fleet deploys the hub with to a real API
// server, and runs the hub binary with their flags, so a renamed flag fails here and not
// only on kind.
func TestHubManifests(t *testing.T) {
	args := HubArgs(app.HubOptions{MemberTimeout: 3 * time.Second, ProbeInterval: time.Second})
	objs, err := HubManifests("inferfleet/hub:e2e", args)
	if err != nil {
		t.Fatal(err)
	}
	env := Start(t, nil)
	ctx := context.Background()
	for _, obj := range objs {
		if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("test"), client.ForceOwnership); err != nil {
			t.Fatalf("apply %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
	d := &appsv1.Deployment{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: fleet.RegistrationNamespace, Name: "inferfleet-hub"}, d); err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if *d.Spec.Replicas != 1 || c.Image != "inferfleet/hub:e2e" || c.ImagePullPolicy != "IfNotPresent" || slices.Contains(c.Args, "--leader-elect") {
		t.Errorf("hub Deployment: replicas %d image %s pull %s args %v", *d.Spec.Replicas, c.Image, c.ImagePullPolicy, c.Args)
	}
	for _, a := range args {
		if !slices.Contains(c.Args, a) {
			t.Errorf("flag %s missing from %v", a, c.Args)
		}
	}
	role := &rbacv1.Role{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: fleet.RegistrationNamespace, Name: "inferfleet-hub"}, role); err != nil {
		t.Errorf("discovery Role not applied: %v", err)
	}

	// The hub accepts every flag: it gets as far as loading its kubeconfig.
	bin := filepath.Join(t.TempDir(), "hub")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(Root(), "cmd", "hub")).CombinedOutput(); err != nil {
		t.Fatalf("build hub: %v\n%s", err, out)
	}
	missing := filepath.Join(t.TempDir(), "missing.kubeconfig")
	out, err := exec.Command(bin, append(c.Args, "--kubeconfig="+missing)...).CombinedOutput()
	if err == nil || strings.Contains(string(out), "flag provided but not defined") || !strings.Contains(string(out), "missing.kubeconfig") {
		t.Errorf("hub with the manifest's flags: %v\n%s", err, out)
	}
	_ = os.Remove(missing)
}
