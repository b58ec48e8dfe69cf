package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Results is what one harness invocation measured; it is written as results.json.
type Results struct {
	Machine Machine       `json:"machine"`
	Options OptionsRecord `json:"options"`
	Fleets  []FleetResult `json:"fleets"`
	// Skipped are the fleet sizes asked for that memory did not allow, with why.
	Skipped []string `json:"skipped,omitempty"`
	// Baseline is another build's results, measured the same way, that results.md
	// compares these with (-baseline).
	Baseline *Results `json:"baseline,omitempty"`
}

// Machine describes where the numbers were taken.
type Machine struct {
	Cores     int     `json:"cores"`
	CPU       string  `json:"cpu,omitempty"`
	MemoryGiB float64 `json:"memoryGiB,omitempty"`
	GoVersion string  `json:"goVersion"`
	OS        string  `json:"os"`
	Arch      string  `json:"arch"`
	Date      string  `json:"date"`
	// Commit is the source measured; "-dirty" when the tree had uncommitted changes.
	Commit string `json:"commit,omitempty"`
}

// OptionsRecord is Options as written into the results (durations in seconds).
type OptionsRecord struct {
	Members  []int `json:"members"`
	Services []int `json:"services"`
	// ServicesAt are the fleet sizes measured at other K values than Services.
	ServicesAt map[int][]int `json:"servicesAt,omitempty"`
	// Scenarios are the outage and load scenarios run.
	Scenarios             []string `json:"scenarios,omitempty"`
	Runs                  int      `json:"runs"`
	ReplicasPerMember     int      `json:"replicasPerMember"`
	FailoverServices      int      `json:"failoverServices"`
	UnhealthyAfterSeconds float64  `json:"unhealthyAfterSeconds"`
	FailbackAfterSeconds  float64  `json:"failbackAfterSeconds"`
	SpillAfterSeconds     float64  `json:"spillAfterSeconds,omitempty"`
	// ReadIntervalSeconds and ScaleDownWindowSeconds are the load step's.
	ReadIntervalSeconds    float64 `json:"readIntervalSeconds,omitempty"`
	ScaleDownWindowSeconds float64 `json:"scaleDownWindowSeconds,omitempty"`
	WindowSeconds          float64 `json:"steadyStateWindowSeconds"`
}

// FleetResult is everything measured on one fleet of Members members. Every figure is the
// median over the runs; Runs keeps each run's own figures.
type FleetResult struct {
	Members     int                 `json:"members"`
	Propagation []PropagationResult `json:"propagation"`
	Update      []UpdateResult      `json:"update"`
	Failover    *FailoverResult     `json:"failover,omitempty"`
	// HubRestart is Failover with the member hung instead of killed and the hub restarted
	// during the outage.
	HubRestart  *FailoverResult  `json:"hubRestart,omitempty"`
	Spillover   *SpilloverResult `json:"spillover,omitempty"`
	LoadStep    *LoadStepResult  `json:"loadStep,omitempty"`
	SteadyState *SteadyState     `json:"steadyState,omitempty"`
	// Footprints are measured at every K of 100 or more, and at the largest K.
	Footprints []Footprint `json:"footprints,omitempty"`
	// Footprint is the single footprint of results written before Footprints (read only).
	Footprint *Footprint `json:"footprint,omitempty"`
	// StartUp is the first service, created as the hub starts.
	StartUp *StartUp `json:"startUp,omitempty"`
	// Restarts are the hub restarted with K services in sync, at every K of a footprint.
	Restarts []Restart `json:"restarts,omitempty"`
	// Floor is one service's member objects applied to every member by a bare client: one
	// server-side apply each, as many at once as member sync, no reads, nothing around it.
	Floor float64 `json:"floorSeconds,omitempty"`
	// FloorRead is Floor with each object read before its apply, as the hub reads those
	// it does not hold in its cache.
	FloorRead float64 `json:"floorReadSeconds,omitempty"`
}

// footprints are the fleet's footprints, from either field.
func (f FleetResult) footprints() []Footprint {
	if len(f.Footprints) > 0 || f.Footprint == nil {
		return f.Footprints
	}
	return []Footprint{*f.Footprint}
}

// StartUp: one service created the moment the hub starts (its informers, caches and
// member connections not yet up), from the hub's start to all its member objects applied
// and to Ready. The propagation runs come after it, on a hub that is up.
type StartUp struct {
	Applied float64 `json:"appliedSeconds"`
	Ready   float64 `json:"readySeconds"`
}

// Restart: the hub stopped and started again with Services services in sync on every
// member and nothing changing. Confirmed is the time from the new hub's start until it has
// synced every service with every member (each (service, member) pair counted once, as
// its propagation metric does); the requests are those it issued from its start until
// Confirmed plus the settle time.
type Restart struct {
	Services  int     `json:"services"`
	Members   int     `json:"members"`
	Confirmed float64 `json:"confirmedSeconds"`
	// Counted is how long after the start requests were counted.
	Counted       float64        `json:"countedSeconds"`
	Writes        map[string]int `json:"writes"`
	WritesHub     int            `json:"writesHub"`
	WritesMembers int            `json:"writesMembers"`
	// HubServerWrites are the writes the hub's kube-apiserver served, by verb and resource.
	HubServerWrites map[string]int `json:"hubServerWrites,omitempty"`
	ReadsHub        int            `json:"readsHub"`
	ReadsMembers    int            `json:"readsMembers"`
	CPUSeconds      float64        `json:"cpuSeconds"`
}

// Summary is the distribution of per-service latencies in seconds.
type Summary struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// PropagationResult: K services created at once, from each create to all its member
// objects observed in every member (Applied) and to the hub reporting it Ready.
type PropagationResult struct {
	Services int `json:"services"`
	// ObjectsPerMember is how many objects one service has in one member.
	ObjectsPerMember int     `json:"objectsPerMember"`
	Applied          Summary `json:"appliedSeconds"`
	Ready            Summary `json:"readySeconds"`
	// ObjectsPerSecond is member objects applied / (last object seen - first create).
	ObjectsPerSecond float64 `json:"objectsPerSecond"`
	// The cost of the run, from the first create to the last service Ready: the process's
	// CPU seconds per 1,000 member objects applied (the hub's and the harness's watches'),
	// and the requests the process sent to members per member object applied.
	CPUPer1000Objects       float64             `json:"cpuSecondsPer1000Objects,omitempty"`
	MemberRequestsPerObject float64             `json:"memberRequestsPerObject,omitempty"`
	MemberWritesPerObject   float64             `json:"memberWritesPerObject,omitempty"`
	Runs                    []PropagationResult `json:"runs,omitempty"`
}

// UpdateResult: the image tag of K services changed at once, from each update to the new
// image in every member's model Deployment (Applied) and to every rollout complete.
type UpdateResult struct {
	Services  int            `json:"services"`
	Applied   Summary        `json:"appliedSeconds"`
	RolledOut Summary        `json:"rolledOutSeconds"`
	Runs      []UpdateResult `json:"runs,omitempty"`
}

// FailoverResult: one member's kube-apiserver is SIGKILLed with Services services running;
// from the kill until its share is placed on the others (Placed) and ready there (Ready);
// then from its restart until the share is back (FailbackPlaced) and ready (FailbackReady).
// Placed includes the services' unhealthyAfter and FailbackPlaced their failbackAfter.
type FailoverResult struct {
	Services int    `json:"services"`
	Victim   string `json:"victim"`
	// HubRestartedAfter, when set, is how long after the outage began the hub restarted
	// (once it had recorded the loss).
	HubRestartedAfter float64 `json:"hubRestartedAfterSeconds,omitempty"`
	Placed            Summary `json:"placedSeconds"`
	Ready             Summary `json:"readySeconds"`
	FailbackPlaced    Summary `json:"failbackPlacedSeconds"`
	FailbackReady     Summary `json:"failbackReadySeconds"`
	// Incomplete says which milestones some services did not reach in time; the
	// summaries then cover only those that did (see each Summary's N).
	Incomplete []string         `json:"incomplete,omitempty"`
	Runs       []FailoverResult `json:"runs,omitempty"`
}

// SpilloverResult: one member's GPU nodes are deleted with Services services running (its
// API stays up); from then until the replicas it cannot schedule are placed on the others
// (Placed, including the services' spillover.after) and ready there (Ready); then from the
// nodes' return until its share is placed back (BackPlaced) and every replica is ready
// (BackReady).
type SpilloverResult struct {
	Services   int               `json:"services"`
	Victim     string            `json:"victim"`
	Placed     Summary           `json:"placedSeconds"`
	Ready      Summary           `json:"readySeconds"`
	BackPlaced Summary           `json:"backPlacedSeconds"`
	BackReady  Summary           `json:"backReadySeconds"`
	Incomplete []string          `json:"incomplete,omitempty"`
	Runs       []SpilloverResult `json:"runs,omitempty"`
}

// LoadStepResult: Services services autoscale on their model servers' waiting requests,
// From servers each; the load per server doubles at once. Decided is the time until the
// autoscaler sets each total to To and placement splits it, Ready until the new servers
// are ready in every member; Down, from the load falling to a quarter, until the totals
// are back to From (the scale-down window included).
type LoadStepResult struct {
	Services   int              `json:"services"`
	From       int32            `json:"from"`
	To         int32            `json:"to"`
	Decided    Summary          `json:"decidedSeconds"`
	Ready      Summary          `json:"readySeconds"`
	Down       Summary          `json:"downSeconds"`
	Incomplete []string         `json:"incomplete,omitempty"`
	Runs       []LoadStepResult `json:"runs,omitempty"`
}

// SteadyState counts the API requests the hub process issued while nothing changed.
type SteadyState struct {
	Services      int     `json:"services"`
	WindowSeconds float64 `json:"windowSeconds"`
	// Writes by HTTP method (POST, PUT, PATCH, DELETE) and by target.
	Writes        map[string]int `json:"writes"`
	WritesHub     int            `json:"writesHub"`
	WritesMembers int            `json:"writesMembers"`
	// HubServerWrites are the writes the hub's kube-apiserver served meanwhile, by verb and
	// resource: the same writes, counted by the server, with what they wrote ("PUT leases"
	// is the kube-apiserver renewing its own identity lease).
	HubServerWrites map[string]int `json:"hubServerWrites,omitempty"`
	// Reads are GET requests (gets, lists, watch restarts, member health probes), for scale.
	Reads        int `json:"reads"`
	ReadsHub     int `json:"readsHub"`
	ReadsMembers int `json:"readsMembers"`
	// CPUCores is the process's CPU time over the window divided by its length.
	CPUCores float64 `json:"cpuCores"`
}

// Footprint is the process's memory at K services x M members, once the harness's own
// member informers are stopped, against a baseline taken before the hub started.
type Footprint struct {
	Services       int   `json:"services"`
	ManagedObjects int   `json:"managedObjects"`
	RSSBytes       int64 `json:"rssBytes"`
	BaselineRSS    int64 `json:"baselineRssBytes"`
	HeapBytes      int64 `json:"heapBytes"`
	BaselineHeap   int64 `json:"baselineHeapBytes"`
	// Per managed object: (value - baseline) / ManagedObjects.
	RSSPerObject  float64 `json:"rssBytesPerObject"`
	HeapPerObject float64 `json:"heapBytesPerObject"`
	// What RSS holds besides live heap objects: heap spans not in use but not returned
	// (fragmentation), goroutine stacks, and the goroutine count.
	// RSSFileBytes is the part of RSS that maps the program's files (its code), against
	// BaselineRSSFile before the hub started.
	RSSFileBytes    int64 `json:"rssFileBytes,omitempty"`
	BaselineRSSFile int64 `json:"baselineRssFileBytes,omitempty"`
	HeapUnusedBytes int64 `json:"heapUnusedBytes,omitempty"`
	StackBytes      int64 `json:"stackBytes,omitempty"`
	Goroutines      int   `json:"goroutines,omitempty"`
	// CPUSeconds is the process's CPU time from the first create to the last Ready.
	CPUSeconds         float64     `json:"propagationCpuSeconds"`
	PropagationSeconds float64     `json:"propagationSeconds"`
	Runs               []Footprint `json:"runs,omitempty"`
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// summarize turns per-service durations into a Summary.
func summarize(ds []time.Duration) Summary {
	v := make([]float64, len(ds))
	for i, d := range ds {
		v[i] = d.Seconds()
	}
	sort.Float64s(v)
	return Summary{N: len(v), P50: round(percentile(v, 50)), P90: round(percentile(v, 90)), P99: round(percentile(v, 99)), Max: round(percentile(v, 100))}
}

// median of values (the mean of the middle two for an even count).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func medianOf[T any](runs []T, f func(T) float64) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	return round(median(v))
}

func medianSummary[T any](runs []T, f func(T) Summary) Summary {
	return Summary{
		N:   int(medianOf(runs, func(r T) float64 { return float64(f(r).N) })),
		P50: medianOf(runs, func(r T) float64 { return f(r).P50 }),
		P90: medianOf(runs, func(r T) float64 { return f(r).P90 }),
		P99: medianOf(runs, func(r T) float64 { return f(r).P99 }),
		Max: medianOf(runs, func(r T) float64 { return f(r).Max }),
	}
}

func round(x float64) float64 { return math.Round(x*1000) / 1000 }

func medianPropagation(runs []PropagationResult) PropagationResult {
	return PropagationResult{
		Services:                runs[0].Services,
		ObjectsPerMember:        runs[0].ObjectsPerMember,
		Applied:                 medianSummary(runs, func(r PropagationResult) Summary { return r.Applied }),
		Ready:                   medianSummary(runs, func(r PropagationResult) Summary { return r.Ready }),
		ObjectsPerSecond:        medianOf(runs, func(r PropagationResult) float64 { return r.ObjectsPerSecond }),
		CPUPer1000Objects:       medianOf(runs, func(r PropagationResult) float64 { return r.CPUPer1000Objects }),
		MemberRequestsPerObject: medianOf(runs, func(r PropagationResult) float64 { return r.MemberRequestsPerObject }),
		MemberWritesPerObject:   medianOf(runs, func(r PropagationResult) float64 { return r.MemberWritesPerObject }),
		Runs:                    runs,
	}
}

func medianUpdate(runs []UpdateResult) UpdateResult {
	return UpdateResult{
		Services:  runs[0].Services,
		Applied:   medianSummary(runs, func(r UpdateResult) Summary { return r.Applied }),
		RolledOut: medianSummary(runs, func(r UpdateResult) Summary { return r.RolledOut }),
		Runs:      runs,
	}
}

// victimsOf joins the runs' victims, each once, and numbers the milestones each run missed.
func victimsOf[R any](runs []R, victim func(R) string, incomplete func(R) []string) (string, []string) {
	var victims, notes []string
	for i, r := range runs {
		if v := victim(r); !slices.Contains(victims, v) {
			victims = append(victims, v)
		}
		for _, n := range incomplete(r) {
			notes = append(notes, fmt.Sprintf("run %d: %s", i+1, n))
		}
	}
	return strings.Join(victims, ","), notes
}

// outage names the failover case for results.md.
func (x *FailoverResult) outage() string {
	if x.HubRestartedAfter > 0 {
		return fmt.Sprintf("hung, hub restarted at %.1fs", x.HubRestartedAfter)
	}
	return "killed"
}

func medianFailover(runs []FailoverResult) *FailoverResult {
	victims, notes := victimsOf(runs, func(r FailoverResult) string { return r.Victim }, func(r FailoverResult) []string { return r.Incomplete })
	return &FailoverResult{
		Services:          runs[0].Services,
		Victim:            victims,
		HubRestartedAfter: medianOf(runs, func(r FailoverResult) float64 { return r.HubRestartedAfter }),
		Incomplete:        notes,
		Placed:            medianSummary(runs, func(r FailoverResult) Summary { return r.Placed }),
		Ready:             medianSummary(runs, func(r FailoverResult) Summary { return r.Ready }),
		FailbackPlaced:    medianSummary(runs, func(r FailoverResult) Summary { return r.FailbackPlaced }),
		FailbackReady:     medianSummary(runs, func(r FailoverResult) Summary { return r.FailbackReady }),
		Runs:              runs,
	}
}

func medianLoadStep(runs []LoadStepResult) *LoadStepResult {
	if len(runs) == 0 {
		return nil
	}
	_, notes := victimsOf(runs, func(LoadStepResult) string { return "" }, func(r LoadStepResult) []string { return r.Incomplete })
	return &LoadStepResult{
		Services: runs[0].Services, From: runs[0].From, To: runs[0].To,
		Decided:    medianSummary(runs, func(r LoadStepResult) Summary { return r.Decided }),
		Ready:      medianSummary(runs, func(r LoadStepResult) Summary { return r.Ready }),
		Down:       medianSummary(runs, func(r LoadStepResult) Summary { return r.Down }),
		Incomplete: notes,
		Runs:       runs,
	}
}

func medianSpillover(runs []SpilloverResult) *SpilloverResult {
	victims, notes := victimsOf(runs, func(r SpilloverResult) string { return r.Victim }, func(r SpilloverResult) []string { return r.Incomplete })
	return &SpilloverResult{
		Services:   runs[0].Services,
		Victim:     victims,
		Incomplete: notes,
		Placed:     medianSummary(runs, func(r SpilloverResult) Summary { return r.Placed }),
		Ready:      medianSummary(runs, func(r SpilloverResult) Summary { return r.Ready }),
		BackPlaced: medianSummary(runs, func(r SpilloverResult) Summary { return r.BackPlaced }),
		BackReady:  medianSummary(runs, func(r SpilloverResult) Summary { return r.BackReady }),
		Runs:       runs,
	}
}

func medianFootprint(runs []Footprint) *Footprint {
	i64 := func(f func(Footprint) int64) int64 {
		return int64(medianOf(runs, func(r Footprint) float64 { return float64(f(r)) }))
	}
	return &Footprint{
		Services:           runs[0].Services,
		ManagedObjects:     runs[0].ManagedObjects,
		RSSBytes:           i64(func(r Footprint) int64 { return r.RSSBytes }),
		BaselineRSS:        i64(func(r Footprint) int64 { return r.BaselineRSS }),
		HeapBytes:          i64(func(r Footprint) int64 { return r.HeapBytes }),
		BaselineHeap:       i64(func(r Footprint) int64 { return r.BaselineHeap }),
		RSSFileBytes:       i64(func(r Footprint) int64 { return r.RSSFileBytes }),
		BaselineRSSFile:    i64(func(r Footprint) int64 { return r.BaselineRSSFile }),
		HeapUnusedBytes:    i64(func(r Footprint) int64 { return r.HeapUnusedBytes }),
		StackBytes:         i64(func(r Footprint) int64 { return r.StackBytes }),
		Goroutines:         int(medianOf(runs, func(r Footprint) float64 { return float64(r.Goroutines) })),
		RSSPerObject:       medianOf(runs, func(r Footprint) float64 { return r.RSSPerObject }),
		HeapPerObject:      medianOf(runs, func(r Footprint) float64 { return r.HeapPerObject }),
		CPUSeconds:         medianOf(runs, func(r Footprint) float64 { return r.CPUSeconds }),
		PropagationSeconds: medianOf(runs, func(r Footprint) float64 { return r.PropagationSeconds }),
		Runs:               runs,
	}
}

// Write stores results.json, results.md and propagation.png in dir.
func (r *Results) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), r.Markdown(), 0o644); err != nil {
		return err
	}
	return r.WritePlot(filepath.Join(dir, "propagation.png"))
}

// Read loads a results.json.
func Read(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := &Results{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

func secs(v float64) string { return fmt.Sprintf("%.2f", v) }

func mib(b int64) string { return fmt.Sprintf("%.0f", float64(b)/(1<<20)) }

// Markdown renders the results as short tables.
func (r *Results) Markdown() []byte {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# inferfleet benchmarks\n\n")
	fmt.Fprintf(&b, "%s · %d cores (%s) · %.0f GiB · %s %s/%s", m.Date, m.Cores, m.CPU, m.MemoryGiB, m.GoVersion, m.OS, m.Arch)
	if m.Commit != "" {
		fmt.Fprintf(&b, " · commit %s", m.Commit)
	}
	o := r.Options
	fmt.Fprintf(&b, "\n\nMedians of %d run(s); %d replica(s) per member per service; seconds unless noted. "+
		"Local fleet: real control planes with kwok nodes, the hub in-process.\n", o.Runs, o.ReplicasPerMember)
	if len(r.Skipped) > 0 {
		fmt.Fprintf(&b, "\nLeft out for memory: %s.\n", strings.Join(r.Skipped, "; "))
	}
	r.targets(&b)

	b.WriteString("\n## Propagation: create to all member objects applied, and to Ready\n\n")
	b.WriteString("| members | services | objects/member | applied p50 | p90 | p99 | Ready p50 | p90 | p99 | objects/s |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range r.Fleets {
		for _, p := range f.Propagation {
			fmt.Fprintf(&b, "| %d | %d | %d | %s | %s | %s | %s | %s | %s | %.1f |\n", f.Members, p.Services, p.ObjectsPerMember,
				secs(p.Applied.P50), secs(p.Applied.P90), secs(p.Applied.P99), secs(p.Ready.P50), secs(p.Ready.P90), secs(p.Ready.P99), p.ObjectsPerSecond)
		}
	}

	b.WriteString("\nFloor: one service's objects applied to every member by a bare client, with none of the hub's work around it " +
		"(one server-side apply per object, as many at once per member as member sync, every member at once); then the same with each object read before its apply, " +
		"as the hub reads every object its cache does not hold (so as never to write over one it does not own): " +
		"the limit of the 1-service row on this machine.\n\n")
	b.WriteString("| members | objects/member | floor | floor, reading first | hub, applied p50 |\n|---:|---:|---:|---:|---:|\n")
	for _, f := range r.Fleets {
		if f.Floor == 0 {
			continue
		}
		hub := "n/a"
		for _, p := range f.Propagation {
			if p.Services == 1 {
				hub = secs(p.Applied.P50)
			}
		}
		per := 0
		if len(f.Propagation) > 0 {
			per = f.Propagation[0].ObjectsPerMember
		}
		fmt.Fprintf(&b, "| %d | %d | %s | %s | %s |\n", f.Members, per, secs(f.Floor), secs(f.FloorRead), hub)
	}

	b.WriteString("\n![Ready latency against services created at once](propagation.png)\n")

	b.WriteString("\n## Start-up: one service created the moment the hub starts, from its start\n\n")
	b.WriteString("The propagation runs above start once the hub is up; this is the hub's start-up on the same path.\n\n")
	b.WriteString("| members | applied | Ready |\n|---:|---:|---:|\n")
	for _, f := range r.Fleets {
		if x := f.StartUp; x != nil {
			fmt.Fprintf(&b, "| %d | %s | %s |\n", f.Members, secs(x.Applied), secs(x.Ready))
		}
	}

	b.WriteString("\n## Cost per member object applied, from the first create to the last Ready\n\n")
	b.WriteString("CPU is the whole process's: the hub's and the harness's own watches on every member.\n\n")
	b.WriteString("| members | services | objects | CPU s per 1,000 objects | member requests per object | of which writes |\n|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range r.Fleets {
		for _, p := range f.Propagation {
			if p.CPUPer1000Objects == 0 {
				continue
			}
			fmt.Fprintf(&b, "| %d | %d | %d | %.2f | %.2f | %.2f |\n", f.Members, p.Services, p.Services*p.ObjectsPerMember*f.Members,
				p.CPUPer1000Objects, p.MemberRequestsPerObject, p.MemberWritesPerObject)
		}
	}

	b.WriteString("\n## Update: image tag change to every member, and to rollouts complete\n\n")
	b.WriteString("| members | services | applied p50 | p99 | rolled out p50 | p99 |\n|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range r.Fleets {
		for _, u := range f.Update {
			fmt.Fprintf(&b, "| %d | %d | %s | %s | %s | %s |\n", f.Members, u.Services, secs(u.Applied.P50), secs(u.Applied.P99), secs(u.RolledOut.P50), secs(u.RolledOut.P99))
		}
	}

	fmt.Fprintf(&b, "\n## Failover: one member's kube-apiserver lost (unhealthyAfter %gs, failbackAfter %gs)\n\n",
		o.UnhealthyAfterSeconds, o.FailbackAfterSeconds)
	b.WriteString("Killed: SIGKILL, restarted for the failback. Hung, hub restarted: SIGSTOP, the hub stopped and started again a few seconds later, SIGCONT for the failback; times run from the hang.\n\n")
	b.WriteString("| members | services | outage | placed elsewhere p50 | p99 | ready elsewhere p50 | p99 | failback placed p50 | p99 | failback ready p50 | p99 |\n")
	b.WriteString("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	failovers := func(f FleetResult) []*FailoverResult { return []*FailoverResult{f.Failover, f.HubRestart} }
	for _, f := range r.Fleets {
		for _, x := range failovers(f) {
			if x == nil {
				continue
			}
			fmt.Fprintf(&b, "| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", f.Members, x.Services, x.outage(),
				secs(x.Placed.P50), secs(x.Placed.P99), secs(x.Ready.P50), secs(x.Ready.P99),
				secs(x.FailbackPlaced.P50), secs(x.FailbackPlaced.P99), secs(x.FailbackReady.P50), secs(x.FailbackReady.P99))
		}
	}
	for _, f := range r.Fleets {
		for _, x := range failovers(f) {
			if x == nil {
				continue
			}
			for _, n := range x.Incomplete {
				fmt.Fprintf(&b, "\n%d members, %s, incomplete: %s\n", f.Members, x.outage(), n)
			}
		}
	}

	fmt.Fprintf(&b, "\n## Spillover: one member's GPU nodes deleted, its API up (spillover.after %gs)\n\n", o.SpillAfterSeconds)
	b.WriteString("| members | services | spilled placed p50 | p99 | spilled ready p50 | p99 | back placed p50 | p99 | back ready p50 | p99 |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range r.Fleets {
		if x := f.Spillover; x != nil {
			fmt.Fprintf(&b, "| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", f.Members, x.Services,
				secs(x.Placed.P50), secs(x.Placed.P99), secs(x.Ready.P50), secs(x.Ready.P99),
				secs(x.BackPlaced.P50), secs(x.BackPlaced.P99), secs(x.BackReady.P50), secs(x.BackReady.P99))
		}
	}
	for _, f := range r.Fleets {
		if x := f.Spillover; x != nil {
			for _, n := range x.Incomplete {
				fmt.Fprintf(&b, "\n%d members, spillover incomplete: %s\n", f.Members, n)
			}
		}
	}

	fmt.Fprintf(&b, "\n## Load step: every model server's waiting requests double, then fall to a quarter (target %d per server, read every %gs, scale-down window %gs)\n\n",
		loadTarget, o.ReadIntervalSeconds, o.ScaleDownWindowSeconds)
	b.WriteString("| members | services | servers | decided p50 | p99 | ready p50 | p99 | back down p50 | p99 |\n")
	b.WriteString("|---:|---:|---|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range r.Fleets {
		if x := f.LoadStep; x != nil {
			fmt.Fprintf(&b, "| %d | %d | %d -> %d | %s | %s | %s | %s | %s | %s |\n", f.Members, x.Services, x.From, x.To,
				secs(x.Decided.P50), secs(x.Decided.P99), secs(x.Ready.P50), secs(x.Ready.P99), secs(x.Down.P50), secs(x.Down.P99))
		}
	}
	for _, f := range r.Fleets {
		if x := f.LoadStep; x != nil {
			for _, n := range x.Incomplete {
				fmt.Fprintf(&b, "\n%d members, load step incomplete: %s\n", f.Members, n)
			}
		}
	}

	b.WriteString("\n## Steady state: API requests the hub issued while nothing changed (target: zero writes)\n\n")
	b.WriteString("| members | services | window | writes | to hub | to members | by method | reads from hub | from members | CPU cores |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|\n")
	for _, f := range r.Fleets {
		if s := f.SteadyState; s != nil {
			fmt.Fprintf(&b, "| %d | %d | %.0fs | %d | %d | %d | %s | %d | %d | %.3f |\n", f.Members, s.Services, s.WindowSeconds,
				s.WritesHub+s.WritesMembers, s.WritesHub, s.WritesMembers, methods(s.Writes), s.ReadsHub, s.ReadsMembers, s.CPUCores)
		}
	}

	b.WriteString("\n## Hub restart with every service in sync (target: in sync again within 30s, no writes to members)\n\n")
	b.WriteString("From the new hub's start until it has synced every service with every member; requests counted until the settle time after that.\n\n")
	b.WriteString("| members | services | in sync again | counted for | writes to members | writes to hub | by method | hub server writes | reads from members | from hub | CPU s |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|\n")
	for _, f := range r.Fleets {
		for _, x := range f.Restarts {
			fmt.Fprintf(&b, "| %d | %d | %s | %.0fs | %d | %d | %s | %s | %d | %d | %.1f |\n", f.Members, x.Services, secs(x.Confirmed), x.Counted,
				x.WritesMembers, x.WritesHub, methods(x.Writes), methods(x.HubServerWrites), x.ReadsMembers, x.ReadsHub, x.CPUSeconds)
		}
	}

	b.WriteString("\n## Footprint of the hub process\n\n")
	b.WriteString("Code is the part of RSS over baseline that maps the program's files; heap unused is heap memory held but not in use (fragmentation); stacks are goroutine stacks.\n\n")
	b.WriteString("| members | services | managed objects | RSS MiB | over baseline | of which code | heap MiB | over baseline | RSS B/object | heap B/object | heap unused MiB | stacks MiB | goroutines | CPU s to Ready |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range r.Fleets {
		for _, x := range f.footprints() {
			fmt.Fprintf(&b, "| %d | %d | %d | %s | %s | %s | %s | %s | %.0f | %.0f | %s | %s | %d | %.1f |\n", f.Members, x.Services, x.ManagedObjects,
				mib(x.RSSBytes), mib(x.RSSBytes-x.BaselineRSS), mib(x.RSSFileBytes-x.BaselineRSSFile), mib(x.HeapBytes), mib(x.HeapBytes-x.BaselineHeap),
				x.RSSPerObject, x.HeapPerObject, mib(x.HeapUnusedBytes), mib(x.StackBytes), x.Goroutines, x.CPUSeconds)
		}
	}
	for _, f := range r.Fleets {
		if s := f.SteadyState; s != nil && len(s.HubServerWrites) > 0 {
			fmt.Fprintf(&b, "\nWrites the hub's kube-apiserver served in that window (%d members; leases are its own): %s.\n", f.Members, methods(s.HubServerWrites))
		}
	}
	if r.Baseline != nil {
		r.compare(&b)
	}
	return []byte(b.String())
}

// compare renders the p50 figures of every fleet size and K measured in both this run and
// the baseline, side by side.
func (r *Results) compare(b *strings.Builder) {
	base := r.Baseline
	m := base.Machine
	fmt.Fprintf(b, "\n## Against the baseline\n\nBaseline: commit %s, %s, %d cores (%s), medians of %d run(s). "+
		"p50 seconds, baseline → this build (change); lower is better.\n\n", m.Commit, m.Date, m.Cores, m.CPU, base.Options.Runs)
	b.WriteString("| members | services | applied | Ready | update applied | update rolled out |\n|---:|---:|---|---|---|---|\n")
	for _, f := range r.Fleets {
		bf := base.fleet(f.Members)
		if bf == nil {
			continue
		}
		for _, p := range f.Propagation {
			i := slices.IndexFunc(bf.Propagation, func(x PropagationResult) bool { return x.Services == p.Services })
			j := slices.IndexFunc(f.Update, func(x UpdateResult) bool { return x.Services == p.Services })
			k := slices.IndexFunc(bf.Update, func(x UpdateResult) bool { return x.Services == p.Services })
			if i < 0 || j < 0 || k < 0 {
				continue
			}
			bp, u, bu := bf.Propagation[i], f.Update[j], bf.Update[k]
			fmt.Fprintf(b, "| %d | %d | %s | %s | %s | %s |\n", f.Members, p.Services, change(bp.Applied.P50, p.Applied.P50),
				change(bp.Ready.P50, p.Ready.P50), change(bu.Applied.P50, u.Applied.P50), change(bu.RolledOut.P50, u.RolledOut.P50))
		}
	}
	b.WriteString("\n| members | failover services | placed elsewhere | ready elsewhere | failback placed | failback ready |\n|---:|---:|---|---|---|---|\n")
	for _, f := range r.Fleets {
		bf := base.fleet(f.Members)
		if bf == nil || bf.Failover == nil || f.Failover == nil {
			continue
		}
		x, bx := f.Failover, bf.Failover
		fmt.Fprintf(b, "| %d | %d | %s | %s | %s | %s |\n", f.Members, x.Services, change(bx.Placed.P50, x.Placed.P50),
			change(bx.Ready.P50, x.Ready.P50), change(bx.FailbackPlaced.P50, x.FailbackPlaced.P50), change(bx.FailbackReady.P50, x.FailbackReady.P50))
	}
}

func (r *Results) fleet(members int) *FleetResult {
	for i := range r.Fleets {
		if r.Fleets[i].Members == members {
			return &r.Fleets[i]
		}
	}
	return nil
}

// change is "was → now (±n%)".
func change(was, now float64) string {
	if was == 0 {
		return fmt.Sprintf("%s → %s", secs(was), secs(now))
	}
	return fmt.Sprintf("%s → %s (%+.0f%%)", secs(was), secs(now), (now-was)/was*100)
}

func methods(w map[string]int) string {
	if len(w) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, w[k])
	}
	return strings.Join(parts, ", ")
}
