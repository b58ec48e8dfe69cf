package framework

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"

	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/localfleet"
)

// The kind fleet: a hub and one kind cluster per member, created per test with the kind Go
// library. The hub image runs in the hub cluster; kwok runs on this machine against each
// member and keeps its fake GPU and TPU nodes Ready (the kind node itself is tainted, so
// every pod lands on them). Members are registered with their addresses on the kind
// network, as the hub inside the hub cluster reaches them.
const (
	// KindPrefix starts the name of every kind cluster the suites create.
	KindPrefix = "inferfleet-e2e-"
	// HubImageEnv names the hub image to load into the hub cluster (`make e2e-kind` builds
	// it); default DefaultHubImage.
	HubImageEnv     = "INFERFLEET_HUB_IMAGE"
	DefaultHubImage = "inferfleet/hub:e2e"
	// KeepKindEnv, when set, keeps the kind clusters after the test for a look.
	KeepKindEnv = "INFERFLEET_E2E_KEEP_KIND"
	// NodeImageEnv names the kind node image (`make e2e-kind` sets it to the one it built
	// where kind's default cannot be pulled); empty: kind's default.
	NodeImageEnv = "INFERFLEET_KIND_NODE_IMAGE"
	// CapShimEnv is the path of runc-capshim where privileged containers need it
	// (hack/kind/engine.sh); the nodes' containerd runs pods through it too.
	CapShimEnv = "INFERFLEET_KIND_CAPSHIM"
	// capShimInNode is where the shim is mounted in each node.
	capShimInNode = "/usr/local/bin/runc-capshim"
	// realNodeTaint keeps workloads off the kind node: they belong on the kwok nodes.
	realNodeTaint = "inferfleet.dev/e2e-real-node"
)

// ErrNoContainerEngine says why the kind fleet cannot run here.
var ErrNoContainerEngine = errors.New("the kind fleet needs a container engine (Docker, Podman or nerdctl) and none was found on this machine; " +
	"the local fleet (the default, " + FleetEnv + "=local) needs none")

// ContainerEngine returns the container engine kind would use, as a command name, in kind's
// own order of preference.
func ContainerEngine() (string, error) {
	if _, err := kindcluster.DetectNodeProvider(); err != nil {
		return "", fmt.Errorf("%w (%v)", ErrNoContainerEngine, err)
	}
	for _, name := range []string{"docker", "nerdctl", "podman"} {
		if _, err := exec.LookPath(name); err == nil {
			return name, nil
		}
	}
	return "", ErrNoContainerEngine
}

// KindHost is what kind nodes need from the machine that runs them.
type KindHost struct {
	// NodeImage is the node image; empty: kind's default.
	NodeImage string
	// CgroupV1 says the engine runs containers on cgroup v1, which kubelets from 1.35 on
	// refuse unless their configuration says failCgroupV1: false.
	CgroupV1 bool
	// CapShim is the path of runc-capshim on this machine, where privileged containers
	// need it: it is mounted into each node and its containerd runs pods through it.
	CapShim string
}

// DetectKindHost reads the node image and shim from the environment (NodeImageEnv,
// CapShimEnv) and the cgroup version from the engine.
func DetectKindHost(engine string) (KindHost, error) {
	h := KindHost{NodeImage: os.Getenv(NodeImageEnv), CapShim: os.Getenv(CapShimEnv)}
	out, err := exec.Command(engine, "info", "--format", "{{.CgroupVersion}}").Output()
	if err != nil {
		return h, fmt.Errorf("%s info: %w", engine, err)
	}
	h.CgroupV1 = strings.TrimSpace(string(out)) == "1"
	return h, nil
}

// KindConfig is the kind configuration of one cluster: one control-plane node, labelled
// with the region (the kind discovery source reads it there) and tainted so that the
// model servers run on the kwok nodes.
func KindConfig(spec localfleet.ClusterSpec, hub bool, host KindHost) *v1alpha4.Cluster {
	node := v1alpha4.Node{Role: v1alpha4.ControlPlaneRole, Labels: map[string]string{}, Image: host.NodeImage}
	if spec.Region != "" {
		node.Labels[fleet.RegionLabel] = spec.Region
	}
	cfg := &v1alpha4.Cluster{
		TypeMeta: v1alpha4.TypeMeta{Kind: "Cluster", APIVersion: "kind.x-k8s.io/v1alpha4"},
		Name:     KindPrefix + spec.Name,
		Nodes:    []v1alpha4.Node{node},
	}
	if !hub {
		// The list replaces kubeadm's default taints: it keeps the control-plane one, which
		// kind removes after init (and fails where there is none to remove).
		cfg.KubeadmConfigPatches = []string{fmt.Sprintf(`kind: InitConfiguration
nodeRegistration:
  taints:
  - {key: %s, value: "true", effect: NoSchedule}
  - {key: node-role.kubernetes.io/control-plane, effect: NoSchedule}
`, realNodeTaint)}
	}
	if host.CgroupV1 {
		cfg.KubeadmConfigPatches = append(cfg.KubeadmConfigPatches, "kind: KubeletConfiguration\nfailCgroupV1: false\n")
	}
	if host.CapShim != "" {
		cfg.Nodes[0].ExtraMounts = append(cfg.Nodes[0].ExtraMounts, v1alpha4.Mount{HostPath: host.CapShim, ContainerPath: capShimInNode, Readonly: true})
		cfg.ContainerdConfigPatches = append(cfg.ContainerdConfigPatches,
			`[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  BinaryName = "`+capShimInNode+`"
`)
	}
	v1alpha4.SetDefaultsCluster(cfg)
	return cfg
}

// KindFleet is a fleet of kind clusters.
type KindFleet struct {
	*LocalFleet
	engine   string
	provider *kindcluster.Provider
	names    map[string]string // member (or hub) name -> kind cluster name
}

var _ Fleet = &KindFleet{}

// StartKindFleet creates the hub and member kind clusters (replacing leftovers of an
// earlier run), attaches them to a local fleet for kwok and CRDs, registers the members in
// the hub and deletes the clusters when the test ends.
func StartKindFleet(t testing.TB, members []localfleet.ClusterSpec) *KindFleet {
	t.Helper()
	engine, err := ContainerEngine()
	if err != nil {
		t.Fatal(err)
	}
	host, err := DetectKindHost(engine)
	if err != nil {
		t.Fatal(err)
	}
	opt, _ := kindcluster.DetectNodeProvider()
	kf := &KindFleet{engine: engine, provider: kindcluster.NewProvider(opt), names: map[string]string{}}
	hubSpec := localfleet.ClusterSpec{Name: localfleet.DefaultHubName}
	specs := append([]localfleet.ClusterSpec{hubSpec}, members...)
	kubeconfigs := make([][]byte, len(specs))
	for i, s := range specs {
		cfg := KindConfig(s, i == 0, host)
		kf.names[s.Name] = cfg.Name
		_ = kf.provider.Delete(cfg.Name, "") // a leftover of an interrupted run
		t.Logf("creating kind cluster %s", cfg.Name)
		if err := kf.provider.Create(cfg.Name, kindcluster.CreateWithV1Alpha4Config(cfg),
			kindcluster.CreateWithWaitForReady(3*time.Minute), kindcluster.CreateWithKubeconfigPath(filepath.Join(t.TempDir(), "kind.kubeconfig")),
			kindcluster.CreateWithDisplayUsage(false), kindcluster.CreateWithDisplaySalutation(false)); err != nil {
			t.Fatalf("create kind cluster %s: %v", cfg.Name, err)
		}
		t.Cleanup(func() {
			if os.Getenv(KeepKindEnv) != "" {
				t.Logf("keeping kind cluster %s (%s is set)", cfg.Name, KeepKindEnv)
				return
			}
			if err := kf.provider.Delete(cfg.Name, ""); err != nil {
				t.Logf("delete kind cluster %s: %v", cfg.Name, err)
			}
		})
		kc, err := kf.provider.KubeConfig(cfg.Name, false)
		if err != nil {
			t.Fatal(err)
		}
		kubeconfigs[i] = []byte(kc)
	}
	attached := make([]localfleet.ClusterSpec, len(members))
	for i, m := range members {
		attached[i] = m
		attached[i].Kubeconfig = kubeconfigs[i+1]
	}
	kf.LocalFleet = StartLocalFleet(t, attached, func(o *localfleet.Options) {
		o.Hub = localfleet.ClusterSpec{Name: hubSpec.Name, Kubeconfig: kubeconfigs[0]}
		o.Unregistered = true
	})
	for _, m := range members {
		kf.Members[m.Name].Faults = &kindFaults{Cluster: kf.Members[m.Name].Local, engine: engine, container: kf.names[m.Name] + "-control-plane"}
		if err := kf.register(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	return kf
}

// register stores a member's kubeconfig for the kind network in the hub: the hub runs in
// the hub cluster and reaches the member's control-plane container at its IP.
func (kf *KindFleet) register(ctx context.Context, m localfleet.ClusterSpec) error {
	name := kf.names[m.Name]
	kc, err := kf.provider.KubeConfig(name, true)
	if err != nil {
		return err
	}
	nodes, err := kf.provider.ListNodes(name)
	if err != nil {
		return err
	}
	cp, err := nodeutils.ControlPlaneNodes(nodes)
	if err != nil || len(cp) == 0 {
		return fmt.Errorf("control plane of %s: %v", name, err)
	}
	ip, _, err := cp[0].IP()
	if err != nil {
		return err
	}
	cfg, err := clientcmd.Load([]byte(kc))
	if err != nil {
		return err
	}
	for _, c := range cfg.Clusters {
		c.Server = "https://" + ip + ":6443" // in the API server certificate: kubeadm's advertise address
	}
	raw, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	return RegisterMember(ctx, kf.Hub.Client, m.Name, m.Region, m.Labels, raw)
}

// RunHub deploys the hub image into the hub cluster with the options' flags and waits until
// it is ready. Options that are Go values (discovery sources' fakes) cannot cross into a
// container and fail the test.
func (kf *KindFleet) RunHub(t testing.TB, o app.HubOptions) {
	t.Helper()
	if len(o.Sources) > 0 || o.GKE.RESTConfigFor != nil || o.Kind.Lister != nil {
		t.Fatal("the kind fleet runs the hub image: discovery sources with Go fakes run on the local fleet only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	image := os.Getenv(HubImageEnv)
	if image == "" {
		image = DefaultHubImage
	}
	if err := kf.loadImage(ctx, image, kf.names[kf.Hub.Name]); err != nil {
		t.Fatal(err)
	}
	objs, err := HubManifests(image, HubArgs(o))
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range objs {
		if err := kf.Hub.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("inferfleet-e2e"), client.ForceOwnership); err != nil {
			t.Fatalf("apply %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
	Eventually(t, 2*time.Minute, "hub Deployment available", func() error {
		d := &appsv1.Deployment{}
		if err := kf.Hub.Client.Get(ctx, client.ObjectKey{Namespace: fleet.RegistrationNamespace, Name: "inferfleet-hub"}, d); err != nil {
			return err
		}
		if d.Status.AvailableReplicas < 1 {
			return fmt.Errorf("available %d", d.Status.AvailableReplicas)
		}
		return nil
	})
	t.Cleanup(func() {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: fleet.RegistrationNamespace, Name: "inferfleet-hub"}}
		if err := kf.Hub.Client.Delete(context.Background(), d); err != nil && !apierrors.IsNotFound(err) {
			t.Logf("delete hub Deployment: %v", err)
		}
	})
}

// loadImage copies an image from the container engine into every node of a kind cluster.
func (kf *KindFleet) loadImage(ctx context.Context, image, cluster string) error {
	var archive, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, kf.engine, "save", image)
	cmd.Stdout, cmd.Stderr = &archive, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s save %s (`make e2e-kind` builds it): %v %s", kf.engine, image, err, stderr.Bytes())
	}
	nodes, err := kf.provider.ListNodes(cluster)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if err := nodeutils.LoadImageArchive(n, bytes.NewReader(archive.Bytes())); err != nil {
			return fmt.Errorf("load %s into %s: %w", image, n.String(), err)
		}
	}
	return nil
}

// Metrics reads the hub's /metrics through the hub API server's service proxy.
func (kf *KindFleet) Metrics(ctx context.Context) (string, error) {
	cs, err := kubernetes.NewForConfig(kf.Fleet.Hub.RESTConfig())
	if err != nil {
		return "", err
	}
	raw, err := cs.CoreV1().Services(fleet.RegistrationNamespace).ProxyGet("http", "inferfleet-hub-metrics", "metrics", "/metrics", nil).DoRaw(ctx)
	return string(raw), err
}

// HubArgs are the hub flags for HubOptions that a container can take. Metrics are served
// as plain HTTP: the suites read them through the API server's service proxy, which the
// secure endpoint refuses (it takes callers' bearer tokens only; TestSecureMetrics covers it).
func HubArgs(o app.HubOptions) []string {
	args := []string{"--metrics-secure=false"}
	if o.MemberTimeout > 0 {
		args = append(args, "--member-timeout="+o.MemberTimeout.String())
	}
	if o.ProbeInterval > 0 {
		args = append(args, "--probe-interval="+o.ProbeInterval.String())
	}
	return args
}

// HubManifests are the hub's objects from config/rbac and config/manager, with the image
// given, one replica without leader election (a test runs one), and extra flags appended.
func HubManifests(image string, extraArgs []string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, f := range []string{"rbac/role.yaml", "rbac/role_binding.yaml", "manager/manager.yaml"} {
		raw, err := os.ReadFile(filepath.Join(Root(), "config", f))
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			// config/default's kustomization puts every namespaced object there.
			if namespaced(u.GetKind()) && u.GetNamespace() == "" {
				u.SetNamespace(fleet.RegistrationNamespace)
			}
			if u.GetKind() == "Deployment" {
				if err := setHubContainer(u, image, extraArgs); err != nil {
					return nil, err
				}
			}
			out = append(out, u)
		}
	}
	// The namespace before what lives in it.
	rank := func(u *unstructured.Unstructured) int {
		if u.GetKind() == "Namespace" {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(out, func(a, b *unstructured.Unstructured) int { return rank(a) - rank(b) })
	return out, nil
}

func namespaced(kind string) bool {
	switch kind {
	case "Namespace", "ClusterRole", "ClusterRoleBinding":
		return false
	}
	return true
}

// setHubContainer points the hub Deployment at image, with one replica, no leader
// election and the extra flags.
func setHubContainer(u *unstructured.Unstructured, image string, extraArgs []string) error {
	if err := unstructured.SetNestedField(u.Object, int64(1), "spec", "replicas"); err != nil {
		return err
	}
	containers, _, err := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	if err != nil || len(containers) == 0 {
		return fmt.Errorf("hub Deployment has no containers: %v", err)
	}
	c := containers[0].(map[string]any)
	c["image"] = image
	c["imagePullPolicy"] = string(corev1.PullIfNotPresent)
	var args []any
	for _, a := range c["args"].([]any) {
		if a != "--leader-elect" {
			args = append(args, a)
		}
	}
	for _, a := range extraArgs {
		args = append(args, a)
	}
	c["args"] = args
	return unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers")
}

// kindFaults break a kind member's node container: a hang pauses it (the API server stops
// answering, connections stay open, as in a partitioned region) and a stop stops it (the
// node goes down: every process in it, as in a lost zone; starting it boots the node
// again). Nodes are the attached kwok nodes.
type kindFaults struct {
	*localfleet.Cluster
	engine, container string
}

var _ Faults = &kindFaults{}

func (k *kindFaults) engineDo(ctx context.Context, args ...string) error {
	if out, err := exec.CommandContext(ctx, k.engine, append(args, k.container)...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s %s: %v %s", k.engine, strings.Join(args, " "), k.container, err, out)
	}
	return nil
}

// StopAPIServer stops the member's node container, whatever the signal.
func (k *kindFaults) StopAPIServer(os.Signal) error {
	return k.engineDo(context.Background(), "stop", "--time", "5")
}

// StartAPIServer starts the node container again and waits until its API server answers.
func (k *kindFaults) StartAPIServer(ctx context.Context) error {
	if err := k.engineDo(ctx, "start"); err != nil {
		return err
	}
	return k.ready(ctx, "start")
}

// HangAPIServer pauses the member's node container.
func (k *kindFaults) HangAPIServer() error { return k.engineDo(context.Background(), "pause") }

// ResumeAPIServer unpauses it and waits until its API server answers.
func (k *kindFaults) ResumeAPIServer() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := k.engineDo(ctx, "unpause"); err != nil {
		return err
	}
	return k.ready(ctx, "unpause")
}

func (k *kindFaults) ready(ctx context.Context, after string) error {
	cs, err := kubernetes.NewForConfig(k.RESTConfig())
	if err != nil {
		return err
	}
	err = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("%s not ready after %s: %w", k.container, after, err)
	}
	return nil
}
