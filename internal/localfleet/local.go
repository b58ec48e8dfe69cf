// Package localfleet runs a fleet of real Kubernetes control planes as processes on 127.0.0.1, no
// containers: a hub (etcd + kube-apiserver) and member clusters (etcd + kube-apiserver +
// kube-controller-manager + kube-scheduler + kwok with fake GPU/TPU nodes), each member
// registered in the hub the way package fleet expects.
package localfleet

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/repo"
)

// Options describes the fleet Start brings up.
type Options struct {
	// Dir holds the fleet's state: certificates, etcd data, kubeconfigs, logs and fleet.json.
	// Certificates and etcd data are reused when a fleet is started again in the same Dir.
	Dir string
	// BinDir holds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok.
	// Default: $INFERFLEET_BIN_DIR, else bin/ at the module root found from the working directory.
	BinDir string
	// Hub is the hub cluster; its Name defaults to "hub". Its Nodes are ignored: the hub runs
	// no scheduler or kwok.
	Hub     ClusterSpec
	Members []ClusterSpec
	// Folders of CRD YAML installed into the hub and into every member (recursively, *.yaml;
	// documents that are not CustomResourceDefinitions are skipped).
	HubCRDDirs, MemberCRDDirs []string
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// Unregistered leaves members out of the hub's registrations, for a discovery source to
	// find them.
	Unregistered bool
	// Detach starts every process in a session of its own that outlives the caller (fleetctl up
	// --detach); stop it later with StopFromState. Without it processes die with the caller.
	Detach bool
	// ModelServerIP, when set, is the pod IP kwok gives every pod that requests an
	// accelerator (the model servers) and every endpoint picker (labelled inferencepool):
	// an address of this host where a test or benchmark serves fake vLLM metrics on the
	// service's model-server port, and fake endpoint-picker metrics on its port 9090, for
	// the hub to read through each member's pod proxy. Not loopback: the pod proxy
	// refuses it.
	ModelServerIP string
}

// ClusterSpec is one cluster of the fleet.
type ClusterSpec struct {
	Name   string
	Region string
	// Labels are copied onto the member's registration Secret, where placement selectors see them.
	Labels map[string]string
	Nodes  []NodeSpec
	// Kubeconfig, when set, attaches a cluster that already runs (a kind cluster, say): no
	// control plane is started for it; its CRDs are installed and, for a member, kwok runs
	// on this machine against it and keeps its fake Nodes Ready.
	Kubeconfig []byte
}

// NodeSpec is one fake node kwok keeps Ready.
type NodeSpec struct {
	Name     string
	Labels   map[string]string
	Capacity corev1.ResourceList // e.g. nvidia.com/gpu: 8; also used as allocatable
	Taints   []corev1.Taint
}

// DefaultHubName is the hub's name when Options.Hub.Name is empty.
const DefaultHubName = "hub"

// Component names, also used in log file names (<Dir>/logs/<cluster>-<component>.log).
const (
	Etcd                  = "etcd"
	KubeAPIServer         = "kube-apiserver"
	KubeControllerManager = "kube-controller-manager"
	KubeScheduler         = "kube-scheduler"
	Kwok                  = "kwok"
)

// startTimeout bounds Start when the caller's context has no deadline.
const startTimeout = 3 * time.Minute

//go:embed stages/*.yaml
var stageFiles embed.FS

// Fleet is a running local fleet.
type Fleet struct {
	Dir     string
	Hub     *Cluster
	Members []*Cluster

	detach  bool
	stateMu sync.Mutex
}

// Member returns the member called name, or nil.
func (f *Fleet) Member(name string) *Cluster {
	for _, m := range f.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Clusters returns the hub followed by the members.
func (f *Fleet) Clusters() []*Cluster { return append([]*Cluster{f.Hub}, f.Members...) }

// Start brings up the hub and every member in parallel and returns once all API servers are
// ready, CRDs are Established, fake nodes are Ready and members are registered in the hub.
// ctx bounds only the start-up; the processes run until Stop (or, when attached, until the
// calling process exits).
func Start(ctx context.Context, o Options) (*Fleet, error) {
	began := time.Now()
	if o.Dir == "" {
		return nil, errors.New("local fleet: Options.Dir is required")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	if o.Hub.Name == "" {
		o.Hub.Name = DefaultHubName
	}
	if err := checkNames(o); err != nil {
		return nil, err
	}
	binDir, err := resolveBinDir(o.BinDir)
	if err != nil {
		return nil, err
	}
	var need []string
	for i, s := range append([]ClusterSpec{o.Hub}, o.Members...) {
		switch {
		case s.Kubeconfig == nil && i == 0:
			need = append(need, Etcd, KubeAPIServer)
		case s.Kubeconfig == nil:
			need = append(need, Etcd, KubeAPIServer, KubeControllerManager, KubeScheduler, Kwok)
		case i > 0:
			need = append(need, Kwok)
		}
	}
	slices.Sort(need)
	need = slices.Compact(need)
	bins, err := findBinaries(binDir, need)
	if err != nil {
		return nil, err
	}
	hubCRDs, err := loadCRDs(o.HubCRDDirs)
	if err != nil {
		return nil, err
	}
	memberCRDs, err := loadCRDs(o.MemberCRDDirs)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	// Two fleets in one Dir would share etcd data; refuse rather than corrupt it.
	if st, err := ReadState(dir); err == nil {
		if live := st.Running(); len(live) > 0 {
			return nil, fmt.Errorf("local fleet: %d processes of a fleet still run in %s (pid %d, ...): stop it first (fleetctl down --dir %s)",
				len(live), dir, live[0].PID, dir)
		}
	}
	out := o.Log
	if out == nil {
		out = io.Discard
	}
	var logMu sync.Mutex
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(out, "[%5.1fs] %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}

	// Ports for every cluster are taken in one go so parallel starts never pick the same one.
	specs := append([]ClusterSpec{o.Hub}, o.Members...)
	ports, err := freePorts(3 * len(specs))
	if err != nil {
		return nil, fmt.Errorf("local fleet: find free ports: %w", err)
	}
	f := &Fleet{Dir: dir, detach: o.Detach}
	for i, s := range specs {
		c := &Cluster{
			Name:           s.Name,
			Region:         s.Region,
			Labels:         maps.Clone(s.Labels),
			KubeconfigPath: filepath.Join(dir, s.Name+".kubeconfig"),
			Server:         fmt.Sprintf("https://127.0.0.1:%d", ports[3*i+2]),
			hub:            i == 0,
			fleet:          f,
			dir:            filepath.Join(dir, s.Name),
			bins:           bins,
			etcdPort:       ports[3*i],
			etcdPeerPort:   ports[3*i+1],
			apiPort:        ports[3*i+2],
			logf:           logf,
			attached:       s.Kubeconfig != nil,
			kubeconfig:     s.Kubeconfig,
			modelServerIP:  o.ModelServerIP,
		}
		if i == 0 {
			f.Hub = c
		} else {
			c.Nodes = s.Nodes
			f.Members = append(f.Members, c)
		}
	}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	// Each cluster comes up in its own goroutine; a member registers itself in the hub as soon
	// as both are ready.
	hubDone := make(chan struct{}) // closed once errs[0] holds the hub's outcome
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, c := range f.Clusters() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.hub {
				errs[i] = c.start(ctx, hubCRDs)
				close(hubDone)
				return
			}
			if errs[i] = c.start(ctx, memberCRDs); errs[i] != nil {
				return
			}
			<-hubDone // the hub's start is bounded by ctx too
			switch {
			case errs[0] != nil:
			case o.Unregistered: // the namespace a discovery source registers members in
				errs[i] = EnsureNamespace(ctx, f.Hub.restConfig, fleet.RegistrationNamespace)
			default:
				errs[i] = f.register(ctx, c)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		_ = f.Stop()
		return nil, fmt.Errorf("local fleet: %w", err)
	}
	if err := f.writeState(); err != nil {
		_ = f.Stop()
		return nil, err
	}
	logf("fleet up in %s (%s)", time.Since(began).Round(100*time.Millisecond), dir)
	return f, nil
}

// Stop stops every process of the fleet (SIGTERM, then SIGKILL after a few seconds) and waits
// for them to exit. State on disk is kept, so the fleet can be started again in the same Dir.
func (f *Fleet) Stop() error {
	var wg sync.WaitGroup
	clusters := f.Clusters()
	errs := make([]error, len(clusters))
	for i, c := range clusters {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.stop()
		}()
	}
	wg.Wait()
	return errors.Join(append(errs, f.writeState())...)
}

// stopGrace is how long a process gets to exit after SIGTERM before it is killed.
const stopGrace = 5 * time.Second

// stopStage orders shutdown: clients of the API server first, then the API server, then etcd,
// so nothing spends its grace period retrying a backend that is already gone.
func stopStage(component string) int {
	switch component {
	case KubeAPIServer:
		return 1
	case Etcd:
		return 2
	}
	return 0
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// checkNames rejects names that cannot be a Secret name or a file name, and duplicates.
func checkNames(o Options) error {
	seen := map[string]bool{}
	for _, s := range append([]ClusterSpec{o.Hub}, o.Members...) {
		if !dnsLabel.MatchString(s.Name) {
			return fmt.Errorf("local fleet: cluster name %q is not a DNS label", s.Name)
		}
		if s.Name == "logs" { // <Dir>/logs holds the process logs
			return fmt.Errorf("local fleet: cluster name %q is reserved", s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("local fleet: cluster name %q used twice", s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

func resolveBinDir(dir string) (string, error) {
	if dir == "" {
		d, err := repo.BinDir()
		if err != nil {
			return "", fmt.Errorf("local fleet: cannot locate bin/ (%v): set INFERFLEET_BIN_DIR or Options.BinDir, and run `make bins` to build the binaries", err)
		}
		dir = d
	}
	return filepath.Abs(dir)
}

func findBinaries(dir string, names []string) (map[string]string, error) {
	bins := map[string]string{}
	var missing []string
	for _, n := range names {
		p := filepath.Join(dir, n)
		if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, n)
			continue
		}
		bins[n] = p
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("local fleet: %s missing from %s: run `make bins` (hack/build-bins.sh) to build them",
			strings.Join(missing, ", "), dir)
	}
	return bins, nil
}

// Ports handed out by this process; the kernel may offer a just-closed port again.
var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	var ports []int
	var held []net.Listener // held open until all are chosen, so none is offered twice
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, l)
		p := l.Addr().(*net.TCPAddr).Port
		if portsUsed[p] {
			continue
		}
		portsUsed[p] = true
		ports = append(ports, p)
	}
	return ports, nil
}

// kwokStages is the kwok --config content: the embedded Stage documents, concatenated,
// and with a model-server address, modelServerStage.
func kwokStages(modelServerIP string) ([]byte, error) {
	entries, err := stageFiles.ReadDir("stages")
	if err != nil {
		return nil, err
	}
	var b []byte
	add := func(data []byte) {
		b = append(b, "---\n"...)
		b = append(b, data...)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			b = append(b, '\n')
		}
	}
	for _, e := range entries {
		data, err := stageFiles.ReadFile("stages/" + e.Name())
		if err != nil {
			return nil, err
		}
		add(data)
	}
	if modelServerIP != "" {
		data, err := modelServerStage(modelServerIP)
		if err != nil {
			return nil, err
		}
		add(data)
	}
	return b, nil
}

// modelServerStage is kwok's pod-ready stage for the pods that request an accelerator (the
// model servers) and the endpoint pickers, but giving them ip: there a test or benchmark
// serves fake vLLM and endpoint-picker metrics,
// which the hub reads through the member API server's pod proxy as it reads real model
// servers (the proxy refuses loopback addresses, so ip is one of the host's). Its weight
// makes kwok pick it over pod-ready (weight 0) for those pods; other pods keep pod-ready.
func modelServerStage(ip string) ([]byte, error) {
	if parsed := net.ParseIP(ip); parsed == nil || parsed.IsLoopback() {
		return nil, fmt.Errorf("model-server address %q: want an IP address that is not loopback (the API server's pod proxy refuses loopback)", ip)
	}
	raw, err := stageFiles.ReadFile("stages/pod-ready.yaml")
	if err != nil {
		return nil, err
	}
	var stage map[string]any
	if err := yaml.Unmarshal(raw, &stage); err != nil {
		return nil, err
	}
	spec, _ := stage["spec"].(map[string]any)
	selector, _ := spec["selector"].(map[string]any)
	next, _ := spec["next"].(map[string]any)
	tmpl, _ := next["statusTemplate"].(string)
	exprs, _ := selector["matchExpressions"].([]any)
	// The pod IPs kwok would allocate, from the template's PodIPsWith to its closing end.
	from := strings.Index(tmpl, "{{ $podIPs := PodIPsWith")
	to := -1
	if from >= 0 {
		if n := strings.Index(tmpl[from:], "{{ end }}\n{{ end }}\n"); n >= 0 {
			to = from + n + len("{{ end }}\n{{ end }}\n")
		}
	}
	if exprs == nil || to < 0 {
		return nil, errors.New("kwok's pod-ready stage changed shape: no selector expressions or pod IPs to replace")
	}
	next["statusTemplate"] = tmpl[:from] + fmt.Sprintf("podIP: %q\npodIPs:\n- ip: %q\n", ip, ip) + tmpl[to:]
	selector["matchExpressions"] = append(exprs, map[string]any{
		"key":      `([.spec.containers.[] | .resources.limits // {} | has("nvidia.com/gpu") or has("google.com/tpu")] | any) or (.metadata.labels // {} | has("inferencepool"))`,
		"operator": "In",
		"values":   []any{"true"},
	})
	spec["weight"] = 1
	stage["metadata"] = map[string]any{"name": "pod-ready-model-server"}
	return yaml.Marshal(stage)
}
