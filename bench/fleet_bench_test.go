//go:build bench

package bench

import (
	"flag"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The full benchmark is behind the bench build tag so that `go test ./...` runs only the
// smoke test; `make bench` sets the tag and these flags.
var (
	members          = flag.String("members", "2,4,8", "fleet sizes, comma-separated; each gets a fleet of its own, if memory allows")
	services         = flag.String("services", "1,10,100", "numbers of services created at once, comma-separated")
	servicesAt       = flag.String("services-at", "", "other numbers of services for some fleet sizes: members:K,K;members:K,... (8:1,100 measures 1 and 100 services on 8 members)")
	scenarios        = flag.String("scenarios", strings.Join(Scenarios, ","), "outage and load scenarios to run, comma-separated, or none")
	runs             = flag.Int("runs", 2, "repetitions; every figure is the median over them")
	replicas         = flag.Int("replicas-per-member", 1, "each service's replicas per member")
	failoverServices = flag.Int("failover-services", 10, "services running while a member's API server is killed")
	unhealthyAfter   = flag.Duration("unhealthy-after", 10*time.Second, "failover.unhealthyAfter of those services")
	failbackAfter    = flag.Duration("failback-after", 15*time.Second, "failover.failbackAfter of those services")
	spillAfter       = flag.Duration("spill-after", 5*time.Second, "spillover.after of the services running while a member loses its GPU nodes")
	window           = flag.Duration("window", 5*time.Minute, "steady-state window in which the hub's writes are counted (on the largest fleet)")
	settle           = flag.Duration("settle", 15*time.Second, "quiet time before memory is measured and the window opens")
	timeout          = flag.Duration("wait", 10*time.Minute, "bound on each wait for a milestone")
	out              = flag.String("out", ".", "folder for results.json and results.md")
	readInterval     = flag.Duration("read-interval", 0, "how often the hub reads the model servers' metrics (0: its default, 15s)")
	scaleDownWindow  = flag.Duration("scale-down-window", 30*time.Second, "scale-down stabilization window of the services the load step runs")
	syncsPerMember   = flag.Int("syncs-per-member", 0, "the hub's --syncs-per-member; 0 keeps its default")
	baseline         = flag.String("baseline", "", "results.json of another build, measured the same way, for results.md to compare with")
)

func ints(t *testing.T, name, s string) []int {
	var v []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			t.Fatalf("-%s: %q is not a positive number", name, f)
		}
		v = append(v, n)
	}
	return v
}

// perFleet parses -services-at.
func perFleet(t *testing.T, s string) map[int][]int {
	out := map[int][]int{}
	for _, part := range strings.Split(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		m, ks, ok := strings.Cut(part, ":")
		n, err := strconv.Atoi(strings.TrimSpace(m))
		if !ok || err != nil || n < 1 {
			t.Fatalf("-services-at: %q is not members:K,K,...", part)
		}
		out[n] = ints(t, "services-at", ks)
	}
	return out
}

// scenarioList parses -scenarios.
func scenarioList(t *testing.T, s string) []string {
	out := []string{}
	if s == "none" {
		return out
	}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(Scenarios, f) {
			t.Fatalf("-scenarios: %q is none of %s (or none)", f, strings.Join(Scenarios, ", "))
		}
		out = append(out, f)
	}
	return out
}

// TestFleetBench runs every scenario and writes results.json and results.md to -out. A
// fleet size that fails is left out of the files, and the test fails.
func TestFleetBench(t *testing.T) {
	o := Options{
		Members: ints(t, "members", *members), Services: ints(t, "services", *services),
		ServicesAt: perFleet(t, *servicesAt), Scenarios: scenarioList(t, *scenarios),
		Runs: *runs, ReplicasPerMember: *replicas, FailoverServices: *failoverServices, SpillAfter: *spillAfter,
		UnhealthyAfter: *unhealthyAfter, FailbackAfter: *failbackAfter,
		Window: *window, Settle: *settle, Timeout: *timeout, SyncsPerMember: *syncsPerMember,
		ReadInterval: *readInterval, ScaleDownWindow: *scaleDownWindow,
	}
	base := readBaseline(t)
	res := Run(t, o)
	res.Baseline = base
	if err := res.Write(*out); err != nil {
		t.Fatal(err)
	}
	path, _ := filepath.Abs(filepath.Join(*out, "results.json"))
	back, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Fleets)+len(back.Skipped) != len(o.Members) {
		t.Errorf("%d of %d fleet sizes measured (%d left out for memory)", len(back.Fleets), len(o.Members), len(back.Skipped))
	}
	t.Logf("wrote %s and results.md:\n%s", path, res.Markdown())
}

// TestFleetBenchReport redraws results.md and propagation.png from the results.json in -out,
// after a change to how they are drawn:
// go test -tags bench -run '^TestFleetBenchReport$' ./bench
func TestFleetBenchReport(t *testing.T) {
	res, err := Read(filepath.Join(*out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Fleets) == 0 {
		t.Fatal("results.json holds no fleet")
	}
	if b := readBaseline(t); b != nil {
		res.Baseline = b
	}
	if err := res.Write(*out); err != nil {
		t.Fatal(err)
	}
}

// readBaseline reads -baseline, without a baseline of its own.
func readBaseline(t *testing.T) *Results {
	if *baseline == "" {
		return nil
	}
	b, err := Read(*baseline)
	if err != nil {
		t.Fatal(err)
	}
	b.Baseline = nil
	return b
}
