package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/inferfleet/inferfleet/internal/testenv"
)

// machine reads the facts results are tied to.
func machine() Machine {
	m := Machine{
		Cores:     runtime.NumCPU(),
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS,
		Arch:      runtime.GOARCH,
		Date:      time.Now().UTC().Format(time.RFC3339),
	}
	if v := procField("/proc/cpuinfo", "model name"); v != "" {
		m.CPU = v
	}
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		if kb, err := strconv.ParseFloat(strings.TrimSuffix(v, " kB"), 64); err == nil {
			m.MemoryGiB = float64(int(kb/(1<<20)*10)) / 10
		}
	}
	if out, err := exec.Command("git", "describe", "--always", "--dirty", "--abbrev=7").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

// procField returns the value of the first "key: value" line of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// memory is the process's resident set and Go heap after a full collection, so that what
// is measured is what is still referenced; with what else RSS holds.
type memory struct {
	rss, rssFile, heap, heapUnused, stacks int64
	goroutines                             int
}

func measureMemory() (memory, error) {
	runtime.GC()
	debug.FreeOSMemory()
	v := procField("/proc/self/status", "VmRSS")
	kb, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	if err != nil {
		return memory{}, fmt.Errorf("VmRSS from /proc/self/status (%q): %w", v, err)
	}
	// RssFile is the part of VmRSS that maps files: the program's own code and data.
	fileKB, _ := strconv.ParseInt(strings.TrimSuffix(procField("/proc/self/status", "RssFile"), " kB"), 10, 64)
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
		{Name: "/memory/classes/os-stacks:bytes"},
		{Name: "/sched/goroutines:goroutines"},
	}
	metrics.Read(s)
	u := func(i int) int64 { return int64(s[i].Value.Uint64()) }
	return memory{rss: kb << 10, rssFile: fileKB << 10, heap: u(0), heapUnused: u(1), stacks: u(2) + u(3), goroutines: int(u(4))}, nil
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// steadyState turns two snapshots into a SteadyState; hub is the hub API server's URL.
func steadyState(before, after testenv.RequestCounts, hub string) SteadyState {
	hubHost := hub
	if u, err := url.Parse(hub); err == nil {
		hubHost = u.Host
	}
	s := SteadyState{Writes: map[string]int{}}
	for host, byMethod := range after {
		for method, n := range byMethod {
			d := int(n - before[host][method])
			if d <= 0 {
				continue
			}
			if !testenv.WriteMethods[method] {
				s.Reads += d
				if host == hubHost {
					s.ReadsHub += d
				} else {
					s.ReadsMembers += d
				}
				continue
			}
			s.Writes[method] += d
			if host == hubHost {
				s.WritesHub += d
			} else {
				s.WritesMembers += d
			}
		}
	}
	return s
}

// serverWrites reads the hub kube-apiserver's apiserver_request_total and sums the write
// verbs by "VERB resource[/subresource]". The hub cluster runs no controllers of its own, so
// every write it serves comes from this process, but for the kube-apiserver renewing its
// own identity lease ("PUT leases"): this names what the hub writes.
func serverWrites(ctx context.Context, cfg *rest.Config) (map[string]float64, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("hub kube-apiserver /metrics: %w", err)
	}
	return parseServerWrites(string(raw)), nil
}

var serverWriteVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "DELETE": true, "APPLY": true, "CREATE": true, "UPDATE": true, "DELETECOLLECTION": true}

// parseServerWrites parses the Prometheus text lines of apiserver_request_total.
func parseServerWrites(text string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, "apiserver_request_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		l := map[string]string{}
		for _, kv := range strings.Split(labels, ",") {
			k, val, ok := strings.Cut(kv, "=")
			if ok {
				l[k] = strings.Trim(val, `"`)
			}
		}
		if !serverWriteVerbs[l["verb"]] {
			continue
		}
		what := l["resource"]
		if l["subresource"] != "" {
			what += "/" + l["subresource"]
		}
		out[l["verb"]+" "+what] += v
	}
	return out
}

// writesBetween is after - before, without the zeros.
func writesBetween(before, after map[string]float64) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := int(v - before[k]); d > 0 {
			out[k] = d
		}
	}
	return out
}
