// Package bench measures the hub on the built-in local fleet: how fast FleetInferenceServices
// reach every member and turn Ready, how fast a change follows, how long a failover and a
// failback take when a member's API server dies, how many writes the hub issues when nothing
// changes, and how much memory and CPU it uses. `make bench` runs it and writes
// bench/results.json and bench/results.md; a small smoke run is an ordinary test.
package bench

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/controllers"
	"github.com/inferfleet/inferfleet/controllers/render"
	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/localfleet"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// Options say what to measure. Zero values take the defaults in parentheses.
type Options struct {
	// Members are the fleet sizes; each gets a fleet of its own (2).
	Members []int
	// Services are the K values of the propagation and update runs, ascending; every K
	// of 100 or more, and the largest, give a footprint, and the largest the hub restart
	// and the steady-state window (1).
	Services []int
	// ServicesAt replaces Services for the fleet sizes it names.
	ServicesAt map[int][]int
	// Scenarios are the outage and load scenarios to run after the propagation runs:
	// failover, failover-restart (across a hub restart), spillover, load (all when nil).
	Scenarios []string
	// Runs repeats every measurement; results are medians (1).
	Runs int
	// ReplicasPerMember is each service's share per member (1).
	ReplicasPerMember int
	// FailoverServices run while a member's API server is killed (1).
	FailoverServices int
	// The failover timers of those services (10s, 15s).
	UnhealthyAfter, FailbackAfter time.Duration
	// SpillAfter is spillover.after of the services running while a member loses its GPU
	// nodes (5s); as many run as FailoverServices.
	SpillAfter time.Duration
	// Window is the steady-state window during which the hub's writes are counted, once,
	// on the largest fleet (1m).
	Window time.Duration
	// Settle is how long the fleet is left alone, once everything is Ready, before memory
	// is measured and the window opens (10s).
	Settle time.Duration
	// Timeout bounds each wait for a milestone (10m).
	Timeout time.Duration
	// SyncsPerMember is the hub's --syncs-per-member (its default when zero).
	SyncsPerMember int
	// ReadInterval is how often the hub reads the model servers' metrics, on which it
	// autoscales (the hub's default, 15s).
	ReadInterval time.Duration
	// ScaleDownWindow is the scale-down stabilization window of the services the load
	// step runs (30s); as many run as FailoverServices.
	ScaleDownWindow time.Duration
}

// Scenarios are every scenario Options.Scenarios may name.
var Scenarios = []string{"failover", "failover-restart", "spillover", "load"}

// servicesAt are the K values measured on a fleet of m members.
func (o *Options) servicesAt(m int) []int {
	if ks, ok := o.ServicesAt[m]; ok {
		return ks
	}
	return o.Services
}

func (o *Options) setDefaults() {
	if len(o.Members) == 0 {
		o.Members = []int{2}
	}
	if len(o.Services) == 0 {
		o.Services = []int{1}
	}
	o.Services = slices.Sorted(slices.Values(o.Services))
	for m, ks := range o.ServicesAt {
		o.ServicesAt[m] = slices.Sorted(slices.Values(ks))
	}
	if o.Scenarios == nil {
		o.Scenarios = Scenarios
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Runs, 1)
	def(&o.ReplicasPerMember, 1)
	def(&o.FailoverServices, 1)
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur(&o.UnhealthyAfter, 10*time.Second)
	defDur(&o.FailbackAfter, 15*time.Second)
	defDur(&o.SpillAfter, 5*time.Second)
	defDur(&o.ReadInterval, controllers.DefaultKVCacheInterval)
	defDur(&o.ScaleDownWindow, 30*time.Second)
	defDur(&o.Window, time.Minute)
	defDur(&o.Settle, 10*time.Second)
	defDur(&o.Timeout, 10*time.Minute)
}

// Run measures every fleet size in o.Members, each in a subtest that owns its fleet, and
// returns what was measured. A failed measurement fails t.
func Run(t *testing.T, o Options) *Results {
	o.setDefaults()
	res := &Results{
		Machine: machine(),
		Options: OptionsRecord{
			Members: o.Members, Services: o.Services, ServicesAt: o.ServicesAt, Scenarios: o.Scenarios,
			Runs: o.Runs, ReplicasPerMember: o.ReplicasPerMember,
			FailoverServices:      o.FailoverServices,
			UnhealthyAfterSeconds: o.UnhealthyAfter.Seconds(), FailbackAfterSeconds: o.FailbackAfter.Seconds(),
			SpillAfterSeconds:      o.SpillAfter.Seconds(),
			ReadIntervalSeconds:    o.ReadInterval.Seconds(),
			ScaleDownWindowSeconds: o.ScaleDownWindow.Seconds(),
			WindowSeconds:          o.Window.Seconds(),
		},
	}
	avail := availableMemoryMiB()
	var sizes []int
	for _, m := range o.Members {
		if ok, why := fits(m, avail); !ok {
			t.Logf("members=%d left out: %s", m, why)
			res.Skipped = append(res.Skipped, fmt.Sprintf("%d members: %s", m, why))
			continue
		}
		sizes = append(sizes, m)
	}
	for _, m := range sizes {
		t.Run(fmt.Sprintf("members=%d", m), func(t *testing.T) {
			b := &fleetBench{t: t, o: o, members: m, window: m == slices.Max(sizes)}
			res.Fleets = append(res.Fleets, b.run())
		})
	}
	return res
}

// What a fleet takes at the largest K (100), rounded up from the RSS measured on the local
// fleet: each member's control plane (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kwok; 0.9 to 1.05 GiB), and the hub's control plane (0.55 to 0.62 GiB)
// with the benchmark process.
const (
	memberMemoryMiB = 1024
	hubMemoryMiB    = 1536
)

// fits reports whether a fleet of m members fits in availableMiB of memory (unknown when
// negative: it is tried), and if not, why.
func fits(m int, availableMiB int64) (bool, string) {
	need := int64(m)*memberMemoryMiB + hubMemoryMiB
	if availableMiB < 0 || need <= availableMiB {
		return true, ""
	}
	return false, fmt.Sprintf("needs about %d MiB, %d MiB available", need, availableMiB)
}

// availableMemoryMiB is MemAvailable from /proc/meminfo, or -1.
func availableMemoryMiB() int64 {
	v := procField("/proc/meminfo", "MemAvailable")
	kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, " kB")), 10, 64)
	if err != nil {
		return -1
	}
	return kb / 1024
}

// namespace holds the benchmark's services in the hub and their objects in members.
const namespace = "default"

// regions name the members' regions in order.
var regions = []string{"europe-west3", "us-east4", "us-central1", "asia-east1", "europe-west4", "us-west1", "asia-northeast1", "southamerica-east1"}

type fleetBench struct {
	t       *testing.T
	o       Options
	members int
	window  bool // this fleet measures the steady-state window

	lf  *framework.LocalFleet
	hub client.Client
	// hubOptions started the hub, and stopHub ends it (restartHub starts it again).
	hubOptions app.HubOptions
	stopHub    func()
	names      []string
	template   *v1alpha1.FleetInferenceService
	token      *corev1.Secret
	kinds      []schema.GroupVersionKind
	perSvc     int // objects one service has in one member
	baseline   memory
	// vllm is the fake vLLM every model server's address leads to.
	vllm *fakeVLLM
}

func (b *fleetBench) logf(format string, args ...any) {
	b.t.Helper()
	b.t.Logf("[%s] %s", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// memberSpecs sizes each member's two GPU nodes so that either could carry every replica a
// member may get, rollouts and failovers included: the benchmark measures the hub, not
// capacity.
func (b *fleetBench) memberSpecs() []localfleet.ClusterSpec {
	maxK := slices.Max(append([]int{b.o.FailoverServices}, b.o.servicesAt(b.members)...))
	gpus := 4 * maxK * b.o.ReplicasPerMember
	pods := 8*maxK*b.o.ReplicasPerMember + 50
	var specs []localfleet.ClusterSpec
	for i := range b.members {
		region := regions[i%len(regions)]
		nodes := localfleet.GPUNodes(region, "nvidia-h100-80gb", 2, 8)
		for j := range nodes {
			nodes[j].Capacity[localfleet.ResourceGPU] = *resource.NewQuantity(int64(max(8, gpus)), resource.DecimalSI)
			nodes[j].Capacity[corev1.ResourcePods] = *resource.NewQuantity(int64(max(110, pods)), resource.DecimalSI)
			// CPU and memory too: a model server and its endpoint picker ask for some of
			// each, and 300 services outgrow a machine type's 96 CPUs.
			nodes[j].Capacity[corev1.ResourceCPU] = *resource.NewQuantity(int64(max(96, 64*maxK*b.o.ReplicasPerMember)), resource.DecimalSI)
			nodes[j].Capacity[corev1.ResourceMemory] = *resource.NewQuantity(int64(max(1, maxK*b.o.ReplicasPerMember))<<40, resource.BinarySI)
		}
		specs = append(specs, localfleet.ClusterSpec{Name: fmt.Sprintf("member-%d", i+1), Region: region, Labels: map[string]string{"tier": "gpu"}, Nodes: nodes})
	}
	return specs
}

func (b *fleetBench) run() FleetResult {
	t := b.t
	ctx := context.Background()
	o := b.o
	b.logf("starting a hub and %d members", b.members)
	specs := b.memberSpecs()
	b.vllm = startFakeVLLM(t)
	b.lf = framework.StartLocalFleet(t, specs, func(o *localfleet.Options) { o.ModelServerIP = b.vllm.ip })
	for _, s := range specs {
		b.names = append(b.names, s.Name)
	}
	var err error
	if b.baseline, err = measureMemory(); err != nil {
		t.Fatal(err)
	}
	b.hub = b.lf.Hub.Client
	b.token = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hf-token", Namespace: namespace, Labels: map[string]string{v1alpha1.LabelCopyToMembers: "true"}}, Data: map[string][]byte{"token": []byte("hf_bench")}}
	if err := b.hub.Create(ctx, b.token.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	b.loadTemplate()
	b.hubOptions = app.HubOptions{SyncsPerMember: o.SyncsPerMember, KVCacheInterval: o.ReadInterval}
	out := FleetResult{Members: b.members}
	out.StartUp = b.startUp()
	// The propagation runs start on a hub that is up, in a fleet done with the start-up
	// service's cleanup.
	time.Sleep(o.Settle)

	ks := o.servicesAt(b.members)
	props := make([][]PropagationResult, len(ks))
	updates := make([][]UpdateResult, len(ks))
	foot := map[int][]Footprint{}
	var floors, floorsRead []float64
	for run := range o.Runs {
		obs := b.observe()
		for i, k := range ks {
			p, keys, fp := b.propagate(obs, run, k)
			props[i] = append(props[i], p)
			updates[i] = append(updates[i], b.update(obs, run, keys))
			b.logf("run %d, %d services: applied p50 %.2fs p99 %.2fs, Ready p50 %.2fs p99 %.2fs, %.0f objects/s; update applied p50 %.2fs, rolled out p50 %.2fs",
				run+1, k, p.Applied.P50, p.Applied.P99, p.Ready.P50, p.Ready.P99, p.ObjectsPerSecond, updates[i][run].Applied.P50, updates[i][run].RolledOut.P50)
			largest := k == ks[len(ks)-1]
			if k >= 100 || largest {
				// Memory, without the harness's own copies of the member objects.
				b.settle(obs, keys, 2)
				obs.stopMembers()
				fp.footprint(b.baseline, k*b.members*b.perSvc)
				foot[k] = append(foot[k], fp)
				b.logf("footprint at %d services: RSS %s MiB (%s over baseline), heap %s MiB, %.0f heap B per managed object; heap unused %s MiB, stacks %s MiB, %d goroutines",
					k, mib(fp.RSSBytes), mib(fp.RSSBytes-fp.BaselineRSS), mib(fp.HeapBytes), fp.HeapPerObject, mib(fp.HeapUnusedBytes), mib(fp.StackBytes), fp.Goroutines)
				if run == o.Runs-1 {
					// Once: the steady-state window (at the largest K on the largest
					// fleet), then a restart.
					if largest && b.window {
						s := b.steadyWindow(k)
						out.SteadyState = &s
					}
					out.Restarts = append(out.Restarts, b.restart(k))
				}
			}
			b.deleteAll(obs, keys)
			if !obs.watchesMembers() && !largest {
				// The next K needs the member watches the footprint stopped.
				obs.stop()
				obs = b.observe()
			}
		}
		obs.stop()
		// The floor's deleted pods go before what comes next.
		floors = append(floors, b.floor(run, false))
		time.Sleep(o.Settle / 3)
		floorsRead = append(floorsRead, b.floor(run, true))
		time.Sleep(o.Settle / 3)
		b.logf("run %d: floor, one service's objects applied to every member by a bare client in %.2fs, %.2fs reading each first", run+1, floors[run], floorsRead[run])
	}
	out.Floor, out.FloorRead = round(median(floors)), round(median(floorsRead))
	for i := range ks {
		out.Propagation = append(out.Propagation, medianPropagation(props[i]))
		out.Update = append(out.Update, medianUpdate(updates[i]))
		if fs := foot[ks[i]]; len(fs) > 0 {
			out.Footprints = append(out.Footprints, *medianFootprint(fs))
		}
	}

	// Failovers come last: a member whose API server was restarted is slower to start new
	// pods, which would skew later propagation runs.
	if slices.Contains(o.Scenarios, "failover") {
		out.Failover = medianFailover(eachRun(b, b.failover))
	}
	if slices.Contains(o.Scenarios, "failover-restart") {
		out.HubRestart = medianFailover(eachRun(b, b.hubRestart))
	}
	if slices.Contains(o.Scenarios, "spillover") {
		out.Spillover = medianSpillover(eachRun(b, b.spillover))
	}
	if slices.Contains(o.Scenarios, "load") {
		out.LoadStep = medianLoadStep(eachRun(b, b.loadStep))
	}
	return out
}

// startUp starts the hub and at once creates one service, as a user applying one with the
// hub would, and measures from the hub's start to the service applied in every member and
// Ready. It leaves the hub running and the service deleted.
func (b *fleetBench) startUp() *StartUp {
	obs := b.observe()
	defer obs.stop()
	svc := b.service("bench-startup")
	key := client.ObjectKeyFromObject(svc)
	applied := obs.await("applied", []client.ObjectKey{key}, allSeen(b.expected(svc)))
	ready := obs.await("Ready", []client.ObjectKey{key}, readyAt(1))
	started := time.Now()
	b.stopHub = b.lf.StartHub(b.t, b.hubOptions)
	if err := b.hub.Create(context.Background(), svc); err != nil {
		b.t.Fatalf("create %s: %v", svc.Name, err)
	}
	res := &StartUp{
		Applied: round(b.wait(obs, applied)[key].Sub(started).Seconds()),
		Ready:   round(b.wait(obs, ready)[key].Sub(started).Seconds()),
	}
	b.logf("start-up: a service created as the hub started was applied in every member %.2fs after the start, Ready after %.2fs", res.Applied, res.Ready)
	b.deleteAll(obs, []client.ObjectKey{key})
	return res
}

// restart stops the hub with k services in sync on every member and starts it again, and
// measures how long the new hub takes to have synced every (service, member) pair, and
// what it writes meanwhile.
func (b *fleetBench) restart(k int) Restart {
	ctx := context.Background()
	b.stopHub()
	synced0, err := testenv.SyncedPairs()
	if err != nil {
		b.t.Fatal(err)
	}
	before := b.requests()
	b.logf("restart: the hub stopped with %d services in sync; starting it again", k)
	started := time.Now()
	b.stopHub = b.lf.StartHub(b.t, b.hubOptions)
	pairs := k * b.members
	var confirmed time.Duration
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, b.o.Timeout, true, func(context.Context) (bool, error) {
		n, err := testenv.SyncedPairs()
		if err != nil {
			return false, err
		}
		confirmed = time.Since(started)
		return n-synced0 >= pairs, nil
	})
	if err != nil {
		b.t.Fatalf("restart: the new hub did not sync %d (service, member) pairs within %s: %v", pairs, b.o.Timeout, err)
	}
	time.Sleep(b.o.Settle)
	counted := time.Since(started)
	n, cpu := b.since(before)
	r := Restart{
		Services: k, Members: b.members, Confirmed: round(confirmed.Seconds()), Counted: round(counted.Seconds()),
		Writes: n.Writes, WritesHub: n.WritesHub, WritesMembers: n.WritesMembers, HubServerWrites: n.HubServerWrites,
		ReadsHub: n.ReadsHub, ReadsMembers: n.ReadsMembers, CPUSeconds: round(cpu.Seconds()),
	}
	b.logf("restart: every service in sync again %.2fs after the start; in %.0fs the hub wrote %d times to members and %d times to its API server (%v; served %v), read %d times from members",
		r.Confirmed, r.Counted, r.WritesMembers, r.WritesHub, r.Writes, r.HubServerWrites, r.ReadsMembers)
	return r
}

// eachRun runs a scenario Options.Runs times, each with an observer of its own.
func eachRun[R any](b *fleetBench, scenario func(*observer, int) R) []R {
	var out []R
	for run := range b.o.Runs {
		obs := b.observe()
		out = append(out, scenario(obs, run))
		obs.stop()
	}
	return out
}

// loadTemplate reads the two-region H100 sample, which every benchmark service copies, and
// renders it once to learn which objects one service has in a member.
func (b *fleetBench) loadTemplate() {
	raw, err := os.ReadFile(filepath.Join(framework.Root(), "config", "samples", "fleet_v1alpha1_two-region-h100.yaml"))
	if err != nil {
		b.t.Fatal(err)
	}
	svc := &v1alpha1.FleetInferenceService{}
	if err := yaml.UnmarshalStrict(raw, svc); err != nil {
		b.t.Fatal(err)
	}
	svc.Spec.Model.Server.Port = b.vllm.port
	b.template = svc
	objs := b.render(b.service("template"), b.names[0])
	b.perSvc = len(objs)
	if b.kinds, err = memberGVKs(objs); err != nil {
		b.t.Fatal(err)
	}
}

// service is a benchmark service named name, spread evenly over every member.
func (b *fleetBench) service(name string) *v1alpha1.FleetInferenceService {
	svc := b.template.DeepCopy()
	svc.Name, svc.Namespace = name, namespace
	// InferenceObjectives are named after the objective: each service needs its own names.
	for i := range svc.Spec.Objectives {
		svc.Spec.Objectives[i].Name = name + "-" + svc.Spec.Objectives[i].Name
	}
	total := int32(b.members * b.o.ReplicasPerMember)
	svc.Spec.Replicas = total
	svc.Spec.Placement.Clusters = nil
	for _, n := range b.names {
		svc.Spec.Placement.Clusters = append(svc.Spec.Placement.Clusters, v1alpha1.ClusterPlacement{Name: n, Weight: ptr.To[int32](1), MaxReplicas: ptr.To(total)})
	}
	return svc
}

// render is what the hub writes for svc in one member.
func (b *fleetBench) render(svc *v1alpha1.FleetInferenceService, member string) []client.Object {
	d := svc.DeepCopy()
	v1alpha1.SetDefaults(d)
	objs, err := render.Member(d, render.MemberInput{
		Cluster:     fleet.Cluster{Name: member},
		Replicas:    int32(b.o.ReplicasPerMember),
		TokenSecret: b.token,
	})
	if err != nil {
		b.t.Fatal(err)
	}
	return objs
}

// expected are the observer keys of svc's objects in every member.
func (b *fleetBench) expected(svc *v1alpha1.FleetInferenceService) []string {
	var keys []string
	for _, m := range b.names {
		for _, obj := range b.render(svc, m) {
			gvk, err := memberGVKs([]client.Object{obj})
			if err != nil {
				b.t.Fatal(err)
			}
			keys = append(keys, objectKey(m, gvk[0], obj.GetNamespace(), obj.GetName()))
		}
	}
	return keys
}

func (b *fleetBench) observe() *observer {
	cfgs := map[string]*rest.Config{}
	for n, m := range b.lf.Members {
		cfgs[n] = m.Local.RESTConfig()
	}
	obs, err := startObserver(context.Background(), b.lf.Fleet.Hub.RESTConfig(), cfgs, b.kinds)
	if err != nil {
		b.t.Fatal(err)
	}
	return obs
}

func (b *fleetBench) wait(obs *observer, m *milestone) map[client.ObjectKey]time.Time {
	b.t.Helper()
	reached, err := obs.wait(m, b.o.Timeout)
	if err != nil {
		b.t.Fatal(err)
	}
	return reached
}

// latencies are, per service that reached its milestone, the time from its start.
func latencies(start, reached map[client.ObjectKey]time.Time) []time.Duration {
	var out []time.Duration
	for k, r := range reached {
		out = append(out, r.Sub(start[k]))
	}
	return out
}

// waitOrNote waits like wait but within timeout, and records a milestone not reached by
// every service in notes instead of failing: the services that did reach it still count.
func (b *fleetBench) waitOrNote(obs *observer, m *milestone, timeout time.Duration, notes *[]string) map[client.ObjectKey]time.Time {
	reached, err := obs.wait(m, timeout)
	if err != nil {
		b.logf("%v", err)
		*notes = append(*notes, err.Error())
	}
	return reached
}

// propagate creates k services at once and measures each from its create to all member
// objects applied and to Ready.
func (b *fleetBench) propagate(obs *observer, run, k int) (PropagationResult, []client.ObjectKey, Footprint) {
	ctx := context.Background()
	var svcs []*v1alpha1.FleetInferenceService
	var keys []client.ObjectKey
	applied := map[client.ObjectKey]*milestone{}
	for i := range k {
		svc := b.service(fmt.Sprintf("bench-r%d-k%d-%03d", run+1, k, i))
		svcs = append(svcs, svc)
		key := client.ObjectKeyFromObject(svc)
		keys = append(keys, key)
		// Each service waits for its own objects; milestones are registered before any
		// create so that no event is missed.
		applied[key] = obs.await("applied "+key.Name, []client.ObjectKey{key}, allSeen(b.expected(svc)))
	}
	ready := obs.await("Ready", keys, readyAt(1))
	before, err := testenv.ReadRequestCounts()
	if err != nil {
		b.t.Fatal(err)
	}
	cpu0 := cpuTime()
	start := map[client.ObjectKey]time.Time{}
	first := time.Now()
	for _, svc := range svcs {
		start[client.ObjectKeyFromObject(svc)] = time.Now()
		if err := b.hub.Create(ctx, svc); err != nil {
			b.t.Fatalf("create %s: %v", svc.Name, err)
		}
	}
	reachedApplied := map[client.ObjectKey]time.Time{}
	var last time.Time
	for key, m := range applied {
		r := b.wait(obs, m)
		reachedApplied[key] = r[key]
		if r[key].After(last) {
			last = r[key]
		}
	}
	reachedReady := b.wait(obs, ready)
	lastReady := time.Time{}
	for _, t := range reachedReady {
		if t.After(lastReady) {
			lastReady = t
		}
	}
	cpu := cpuTime() - cpu0
	after, err := testenv.ReadRequestCounts()
	if err != nil {
		b.t.Fatal(err)
	}
	n := steadyState(before, after, b.lf.Fleet.Hub.Server)
	objects := k * b.members * b.perSvc
	return PropagationResult{
			Services:                k,
			ObjectsPerMember:        b.perSvc,
			Applied:                 summarize(latencies(start, reachedApplied)),
			Ready:                   summarize(latencies(start, reachedReady)),
			ObjectsPerSecond:        round(float64(objects) / last.Sub(first).Seconds()),
			CPUPer1000Objects:       round(cpu.Seconds() * 1000 / float64(objects)),
			MemberRequestsPerObject: round(float64(n.ReadsMembers+n.WritesMembers) / float64(objects)),
			MemberWritesPerObject:   round(float64(n.WritesMembers) / float64(objects)),
		}, keys, Footprint{
			Services: k, CPUSeconds: round(cpu.Seconds()), PropagationSeconds: round(lastReady.Sub(first).Seconds()),
		}
}

// update changes the image tag of every service and measures each from its update to the
// new image in every member and to every member's rollout complete.
func (b *fleetBench) update(obs *observer, run int, keys []client.ObjectKey) UpdateResult {
	image := fmt.Sprintf("vllm/vllm-openai:bench-%d", run+1)
	applied := obs.await("update applied", keys, imageIn(b.names, image, false))
	rolled := obs.await("update rolled out", keys, imageIn(b.names, image, true))
	before, err := testenv.ReadRequestCounts()
	if err != nil {
		b.t.Fatal(err)
	}
	start := map[client.ObjectKey]time.Time{}
	for _, key := range keys {
		start[key] = time.Now()
		framework.UpdateService(b.t, b.hub, key, func(svc *v1alpha1.FleetInferenceService) { svc.Spec.Model.Server.Image = image })
	}
	res := UpdateResult{
		Services:  len(keys),
		Applied:   summarize(latencies(start, b.wait(obs, applied))),
		RolledOut: summarize(latencies(start, b.wait(obs, rolled))),
	}
	after, err := testenv.ReadRequestCounts()
	if err != nil {
		b.t.Fatal(err)
	}
	// The hub's own load on the members while they roll out is part of what slows them.
	n := steadyState(before, after, b.lf.Fleet.Hub.Server)
	b.logf("update of %d services, until rolled out: the hub sent %d reads and %d writes to members, %d reads and %d writes to its API server",
		len(keys), n.ReadsMembers, n.WritesMembers, n.ReadsHub, n.WritesHub)
	return res
}

// settle waits until the hub reports every service Ready at generation gen, then leaves
// the fleet alone for Options.Settle.
func (b *fleetBench) settle(obs *observer, keys []client.ObjectKey, gen int64) {
	b.wait(obs, obs.await("Ready after the update", keys, readyAt(gen)))
	time.Sleep(b.o.Settle)
}

// footprint fills in memory now, against the baseline taken before the hub started.
func (f *Footprint) footprint(base memory, objects int) {
	mem, err := measureMemory()
	if err == nil {
		f.RSSBytes, f.HeapBytes = mem.rss, mem.heap
	}
	f.BaselineRSS, f.BaselineHeap = base.rss, base.heap
	f.RSSFileBytes, f.BaselineRSSFile = mem.rssFile, base.rssFile
	f.HeapUnusedBytes, f.StackBytes, f.Goroutines = mem.heapUnused, mem.stacks, mem.goroutines
	f.ManagedObjects = objects
	if objects > 0 {
		f.RSSPerObject = round(float64(f.RSSBytes-f.BaselineRSS) / float64(objects))
		f.HeapPerObject = round(float64(f.HeapBytes-f.BaselineHeap) / float64(objects))
	}
}

// steadyWindow counts the requests the process issues during Options.Window while nothing
// changes. The harness itself only keeps a watch on the hub's services meanwhile.
func (b *fleetBench) steadyWindow(k int) SteadyState {
	b.logf("steady state: counting the hub's API requests for %s", b.o.Window)
	before := b.requests()
	began := time.Now()
	time.Sleep(b.o.Window)
	s, cpu := b.since(before)
	elapsed := time.Since(began)
	s.Services, s.WindowSeconds = k, round(elapsed.Seconds())
	s.CPUCores = round(cpu.Seconds() / elapsed.Seconds())
	b.logf("steady state: %d writes to the hub, %d to members (%v), %d reads (%d from the hub), %.3f CPU cores; the hub served %v",
		s.WritesHub, s.WritesMembers, s.Writes, s.Reads, s.ReadsHub, s.CPUCores, s.HubServerWrites)
	return s
}

// requests is a snapshot of the requests this process made, by API server, of the writes
// the hub's kube-apiserver served, and of the process's CPU time.
type requests struct {
	client testenv.RequestCounts
	server map[string]float64
	cpu    time.Duration
}

func (b *fleetBench) requests() requests {
	c, err := testenv.ReadRequestCounts()
	if err != nil {
		b.t.Fatal(err)
	}
	srv, err := serverWrites(context.Background(), b.lf.Fleet.Hub.RESTConfig())
	if err != nil {
		b.t.Fatal(err)
	}
	return requests{client: c, server: srv, cpu: cpuTime()}
}

// since counts the requests made and served from before until now, with the CPU time
// spent meanwhile.
func (b *fleetBench) since(before requests) (SteadyState, time.Duration) {
	now := b.requests()
	s := steadyState(before.client, now.client, b.lf.Fleet.Hub.Server)
	s.HubServerWrites = writesBetween(before.server, now.server)
	return s, now.cpu - before.cpu
}

// deleteAll deletes the services and waits until they are gone everywhere.
func (b *fleetBench) deleteAll(obs *observer, keys []client.ObjectKey) {
	ctx := context.Background()
	check := goneFromHub
	if obs.watchesMembers() {
		check = gone
	}
	m := obs.await("deleted", keys, check)
	for _, key := range keys {
		svc := &v1alpha1.FleetInferenceService{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}}
		if err := b.hub.Delete(ctx, svc); client.IgnoreNotFound(err) != nil {
			b.t.Fatalf("delete %s: %v", key, err)
		}
	}
	b.wait(obs, m)
}

// spreadServices creates FailoverServices services named prefix-NNN, set as set says,
// waits until each has its share ready on every member and lets the fleet settle. It
// returns their keys and that even spread.
func (b *fleetBench) spreadServices(obs *observer, prefix string, set func(*v1alpha1.FleetInferenceService)) ([]client.ObjectKey, map[string]int32) {
	var keys []client.ObjectKey
	var svcs []*v1alpha1.FleetInferenceService
	for i := range b.o.FailoverServices {
		svc := b.service(fmt.Sprintf("%s-%03d", prefix, i))
		set(svc)
		svcs = append(svcs, svc)
		keys = append(keys, client.ObjectKeyFromObject(svc))
	}
	even := map[string]int32{}
	for _, n := range b.names {
		even[n] = int32(b.o.ReplicasPerMember)
	}
	up := obs.await("spread and ready", keys, shares(even, true, ""))
	for _, svc := range svcs {
		if err := b.hub.Create(context.Background(), svc); err != nil {
			b.t.Fatalf("create %s: %v", svc.Name, err)
		}
	}
	b.wait(obs, up)
	time.Sleep(b.o.Settle)
	return keys, even
}

// failover runs FailoverServices services on every member, SIGKILLs a member's
// kube-apiserver and measures, per service, the time until its share is placed on the
// others and ready there; then restarts it and measures the failback likewise. Each run
// takes another victim, from the last member back: a member's controllers can stay behind
// after a second restart of its API server (see localfleet.Cluster.StartAPIServer).
func (b *fleetBench) failover(obs *observer, run int) FailoverResult {
	victim := b.names[len(b.names)-1-run%len(b.names)]
	member := b.lf.Members[victim].Local
	return b.outage(obs, run, &outage{
		name: "failover", victim: victim, what: "SIGKILL " + victim + "'s kube-apiserver",
		begin: func() error { return member.StopAPIServer(syscall.SIGKILL) },
		end:   func() error { return member.StartAPIServer(context.Background()) },
	})
}

// hubRestart is failover with the hub restarted during the outage: a member's
// kube-apiserver hangs (SIGSTOP: connections open, nothing answers), the hub is stopped
// as soon as it has recorded the loss on the member's registration (its health monitor
// needs two failed probes, 2 to 6 s) and started again at once, and the times run from
// the hang, so the restarted hub is measured against the outage, not its own start.
// SIGCONT ends the outage for the failback. Victims go from the first member on (failover
// takes the last).
func (b *fleetBench) hubRestart(obs *observer, run int) FailoverResult {
	victim := b.names[run%len(b.names)]
	member := b.lf.Members[victim].Local
	var hung time.Time
	o := outage{
		name: "restart", victim: victim, what: fmt.Sprintf("SIGSTOP %s's kube-apiserver, restart the hub once it has recorded that", victim),
		end: member.ResumeAPIServer,
	}
	o.begin = func() error {
		if err := member.HangAPIServer(); err != nil {
			return err
		}
		hung = time.Now()
		if err := b.recordedUnreachable(victim, b.o.UnhealthyAfter); err != nil {
			return err
		}
		o.restartAfter = time.Since(hung).Round(100 * time.Millisecond)
		b.stopHub()
		b.stopHub = b.lf.StartHub(b.t, b.hubOptions)
		return nil
	}
	return b.outage(obs, run, &o)
}

// recordedUnreachable waits until the hub has recorded a member unreachable on its
// registration Secret, which is what a restarted hub takes the outage up from.
func (b *fleetBench) recordedUnreachable(member string, within time.Duration) error {
	key := client.ObjectKey{Namespace: fleet.RegistrationNamespace, Name: member}
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, within, true, func(ctx context.Context) (bool, error) {
		s := &corev1.Secret{}
		if err := b.hub.Get(ctx, key, s); err != nil {
			return false, nil
		}
		return s.Annotations[fleet.AnnotationReachable] == "false", nil
	})
	if err != nil {
		return fmt.Errorf("the hub had not recorded %s unreachable on its registration %s within %s: %w", member, key, within, err)
	}
	return nil
}

// outage is one way to lose a member: begin starts the outage (and returns once the
// measured scenario is under way), end ends it.
type outage struct {
	name, victim, what string
	begin, end         func() error
	// restartAfter, once begin has set it, is when begin restarted the hub.
	restartAfter time.Duration
}

// outage runs FailoverServices services with failover on every member, begins the outage
// and measures, per service and from that moment, the time until the victim's share is
// placed on the others and ready there; then ends it and measures the failback likewise.
func (b *fleetBench) outage(obs *observer, run int, o *outage) FailoverResult {
	share := int32(b.o.ReplicasPerMember)
	total := share * int32(b.members)
	keys, even := b.spreadServices(obs, fmt.Sprintf("bench-r%d-%s", run+1, o.name), func(svc *v1alpha1.FleetInferenceService) {
		svc.Spec.Placement.Failover = v1alpha1.FailoverSpec{
			Policy:         v1alpha1.FailoverRedistribute,
			UnhealthyAfter: &metav1.Duration{Duration: b.o.UnhealthyAfter},
			FailbackAfter:  &metav1.Duration{Duration: b.o.FailbackAfter},
		}
	})

	placed := obs.await("share placed elsewhere", keys, movedOff(o.victim, total, false))
	ready := obs.await("share ready elsewhere", keys, movedOff(o.victim, total, true))
	b.logf("run %d: %s with %d services", run+1, o.what, len(keys))
	began := time.Now()
	if err := o.begin(); err != nil {
		b.t.Fatal(err)
	}
	res := FailoverResult{Services: len(keys), Victim: o.victim, HubRestartedAfter: o.restartAfter.Seconds()}
	away, again := b.o.UnhealthyAfter+2*time.Minute, b.o.FailbackAfter+2*time.Minute
	res.Placed = summarize(latencies(since(keys, began), b.waitOrNote(obs, placed, away, &res.Incomplete)))
	res.Ready = summarize(latencies(since(keys, began), b.waitOrNote(obs, ready, away, &res.Incomplete)))

	backPlaced := obs.await("share placed back", keys, shareOn(o.victim, share))
	backReady := obs.await("spread and ready again", keys, shares(even, true, ""))
	ended := time.Now()
	if err := o.end(); err != nil {
		b.t.Fatal(err)
	}
	res.FailbackPlaced = summarize(latencies(since(keys, ended), b.waitOrNote(obs, backPlaced, again, &res.Incomplete)))
	res.FailbackReady = summarize(latencies(since(keys, ended), b.waitOrNote(obs, backReady, again, &res.Incomplete)))
	b.logf("run %d: %s: placed p50 %.2fs, ready p50 %.2fs; failback placed p50 %.2fs, ready p50 %.2fs",
		run+1, o.name, res.Placed.P50, res.Ready.P50, res.FailbackPlaced.P50, res.FailbackReady.P50)
	b.deleteAll(obs, keys)
	return res
}

// since gives every key the same start.
func since(keys []client.ObjectKey, t time.Time) map[client.ObjectKey]time.Time {
	out := make(map[client.ObjectKey]time.Time, len(keys))
	for _, k := range keys {
		out[k] = t
	}
	return out
}

// spillover runs FailoverServices services on every member, deletes a member's GPU nodes
// (its API stays up; its pods cannot be scheduled) and measures, per service, the time
// until the replicas it cannot run are placed on the others and ready there; then brings
// the nodes back and measures the time until every replica is back and ready. The first
// includes the services' spillover.after.
func (b *fleetBench) spillover(obs *observer, run int) SpilloverResult {
	ctx := context.Background()
	victim := b.names[run%len(b.names)]
	share := int32(b.o.ReplicasPerMember)
	total := share * int32(b.members)
	keys, even := b.spreadServices(obs, fmt.Sprintf("bench-r%d-spill", run+1), func(svc *v1alpha1.FleetInferenceService) {
		svc.Spec.Placement.Spillover = v1alpha1.SpilloverSpec{Policy: v1alpha1.SpilloverSpill, After: &metav1.Duration{Duration: b.o.SpillAfter}}
	})

	placed := obs.await("spilled elsewhere", keys, spilledOff(victim, total, false))
	ready := obs.await("spilled and ready elsewhere", keys, spilledOff(victim, total, true))
	b.logf("run %d: delete %s's GPU nodes with %d services", run+1, victim, len(keys))
	member := b.lf.Members[victim].Local
	removedAt := time.Now()
	if removed, err := member.RemoveNodes(ctx, map[string]string{localfleet.LabelGKEAccelerator: b.template.Spec.Model.Accelerator.Type}); err != nil || len(removed) == 0 {
		b.t.Fatalf("remove %s's GPU nodes: %v %v", victim, removed, err)
	}
	lost := since(keys, removedAt)
	res := SpilloverResult{Services: len(keys), Victim: victim}
	away := b.o.SpillAfter + 2*time.Minute
	res.Placed = summarize(latencies(lost, b.waitOrNote(obs, placed, away, &res.Incomplete)))
	res.Ready = summarize(latencies(lost, b.waitOrNote(obs, ready, away, &res.Incomplete)))

	backPlaced := obs.await("share placed back", keys, spilledBack(victim, share))
	backReady := obs.await("spread and ready again", keys, shares(even, true, ""))
	restoredAt := time.Now()
	if err := member.RestoreNodes(ctx); err != nil {
		b.t.Fatal(err)
	}
	back := since(keys, restoredAt)
	res.BackPlaced = summarize(latencies(back, b.waitOrNote(obs, backPlaced, 2*time.Minute, &res.Incomplete)))
	res.BackReady = summarize(latencies(back, b.waitOrNote(obs, backReady, 2*time.Minute, &res.Incomplete)))
	b.logf("run %d: spilled placed p50 %.2fs, ready p50 %.2fs; back placed p50 %.2fs, ready p50 %.2fs",
		run+1, res.Placed.P50, res.Ready.P50, res.BackPlaced.P50, res.BackReady.P50)
	b.deleteAll(obs, keys)
	return res
}

// fakeVLLM stands in for every model server of the fleet: kwok gives the model servers its
// address (localfleet.Options.ModelServerIP), and it reports the waiting requests the
// benchmark sets, which the hub reads through each member's pod proxy and autoscales on.
type fakeVLLM struct {
	ip      string
	port    int32
	waiting atomic.Int64 // per server, in thousandths
}

func startFakeVLLM(t *testing.T) *fakeVLLM {
	host := testenv.TestHost(t)
	l := host.Listen(t)
	f := &fakeVLLM{ip: host.IP, port: int32(l.Addr().(*net.TCPAddr).Port)}
	f.set(loadTarget)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "# TYPE %s gauge\n%s{model_name=\"bench\"} %g\n# TYPE %s gauge\n%s{model_name=\"bench\"} 0.5\n",
			fleet.VLLMWaitingMetric, fleet.VLLMWaitingMetric, float64(f.waiting.Load())/1000, fleet.VLLMKVCacheMetric, fleet.VLLMKVCacheMetric)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return f
}

// set makes every model server report v waiting requests.
func (f *fakeVLLM) set(v float64) { f.waiting.Store(int64(math.Round(v * 1000))) }

// loadTarget is the waiting requests per server the load-step services keep.
const loadTarget = 5

// loadStep runs FailoverServices services that autoscale on waiting requests (target
// loadTarget per server), spread one share per member, with every server on target. Their
// load then doubles at once: the autoscaler doubles each total within a read interval, and
// placement spreads the new servers. Then it falls to a quarter: the totals halve back once
// the scale-down window has passed.
func (b *fleetBench) loadStep(obs *observer, run int) LoadStepResult {
	share := int32(b.o.ReplicasPerMember)
	total := share * int32(b.members)
	b.vllm.set(loadTarget)
	keys, _ := b.spreadServices(obs, fmt.Sprintf("bench-r%d-load", run+1), func(svc *v1alpha1.FleetInferenceService) {
		svc.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{
			MinReplicas: ptr.To[int32](1), MaxReplicas: 2 * total,
			Metrics: []v1alpha1.AutoscalingMetric{{Type: v1alpha1.MetricWaitingRequests, AverageValue: resource.NewQuantity(loadTarget, resource.DecimalSI)}},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To(int32(b.o.ScaleDownWindow.Seconds()))},
			},
		}
	})
	res := LoadStepResult{Services: len(keys), From: total, To: 2 * total}
	// The autoscaler has read every server on target before the step.
	b.wait(obs, obs.await("every server read on target", keys, scaledTo(total, false, total)))

	decided := obs.await("total doubled", keys, scaledTo(2*total, false, 0))
	ready := obs.await("doubled and ready", keys, scaledTo(2*total, true, 0))
	b.logf("run %d: load doubles on %d services", run+1, len(keys))
	stepAt := stamp(keys, time.Now())
	b.vllm.set(2 * loadTarget)
	bound := b.o.ReadInterval + 2*time.Minute
	res.Decided = summarize(latencies(stepAt, b.waitOrNote(obs, decided, bound, &res.Incomplete)))
	res.Ready = summarize(latencies(stepAt, b.waitOrNote(obs, ready, bound, &res.Incomplete)))

	down := obs.await("total back and ready", keys, scaledTo(total, true, 0))
	downAt := stamp(keys, time.Now())
	b.vllm.set(loadTarget / 2.0) // half the target on twice the servers: back to total
	res.Down = summarize(latencies(downAt, b.waitOrNote(obs, down, bound+b.o.ScaleDownWindow, &res.Incomplete)))
	b.logf("run %d: load step %d -> %d: decided p50 %.2fs, ready p50 %.2fs; back to %d p50 %.2fs",
		run+1, res.From, res.To, res.Decided.P50, res.Ready.P50, res.From, res.Down.P50)
	b.vllm.set(loadTarget)
	b.deleteAll(obs, keys)
	return res
}

// stamp gives every key the same time.
func stamp(keys []client.ObjectKey, at time.Time) map[client.ObjectKey]time.Time {
	out := make(map[client.ObjectKey]time.Time, len(keys))
	for _, k := range keys {
		out[k] = at
	}
	return out
}
