package framework

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/internal/localfleet"
)

// ClusterProxy is one cluster a spec talks to: its name, client and the knobs a failure
// drill needs. Specs take ClusterProxies, so they run on any fleet that provides them.
type ClusterProxy struct {
	Name   string
	Region string
	Client client.Client
	// KubeconfigPath is an admin kubeconfig of the cluster, for kubectl.
	KubeconfigPath string
	// Faults break and mend the cluster (members only).
	Faults Faults
	// Local is the built-in local fleet's cluster (attached, on kind).
	Local *localfleet.Cluster
}

// Faults are the failures a suite injects into a member, whatever runs it.
type Faults interface {
	// StopAPIServer takes the member's API away, as a region loss would (on the local
	// fleet sig reaches kube-apiserver; kind stops the member's node container).
	StopAPIServer(sig os.Signal) error
	// StartAPIServer brings it back and waits until it answers.
	StartAPIServer(ctx context.Context) error
	// HangAPIServer makes the member's API stop answering with its connections open, as a
	// partition would (the local fleet stops kube-apiserver with SIGSTOP; kind pauses the
	// node container). ResumeAPIServer ends that.
	HangAPIServer() error
	ResumeAPIServer() error
	// RemoveNodes deletes the fake nodes matching selector, and their pods.
	RemoveNodes(ctx context.Context, selector map[string]string) ([]string, error)
	// RestoreNodes brings them back Ready.
	RestoreNodes(ctx context.Context) error
}

// Fleet is what the shared suites run against: the built-in local fleet or kind clusters.
type Fleet interface {
	// HubProxy is the hub (config cluster).
	HubProxy() *ClusterProxy
	// Member returns a member by name, or nil.
	Member(name string) *ClusterProxy
	// RunHub runs the hub manager against the fleet until the test ends: in-process on the
	// local fleet, as the hub image in the hub cluster on kind.
	RunHub(t testing.TB, o app.HubOptions)
	// Metrics returns the hub's /metrics text.
	Metrics(ctx context.Context) (string, error)
}

// FleetEnv selects the fleet StartFleet brings up: "local" (the default) or "kind".
const FleetEnv = "INFERFLEET_E2E_FLEET"

// StartFleet brings up the fleet FleetEnv names with the given members and registers them
// in the hub.
func StartFleet(t testing.TB, members []localfleet.ClusterSpec) Fleet {
	t.Helper()
	switch v := os.Getenv(FleetEnv); v {
	case "", "local":
		return StartLocalFleet(t, members)
	case "kind":
		return StartKindFleet(t, members)
	default:
		t.Fatalf("%s=%q: want local or kind", FleetEnv, v)
		return nil
	}
}

// LocalFleet is a running built-in local fleet with the hub manager running in-process.
type LocalFleet struct {
	Fleet   *localfleet.Fleet
	Hub     *ClusterProxy
	Members map[string]*ClusterProxy

	metricsAddr string
}

var _ Fleet = &LocalFleet{}

// HubProxy is the hub.
func (lf *LocalFleet) HubProxy() *ClusterProxy { return lf.Hub }

// Member returns a member by name, or nil.
func (lf *LocalFleet) Member(name string) *ClusterProxy { return lf.Members[name] }

// Metrics scrapes the in-process hub's metrics endpoint.
func (lf *LocalFleet) Metrics(ctx context.Context) (string, error) {
	if lf.metricsAddr == "" {
		return "", errors.New("the hub runs without a metrics endpoint: pass MetricsAddr to RunHub")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+lf.metricsAddr+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// Unregistered starts the members without registering them in the hub, for a test in which
// a discovery source finds them.
func Unregistered(o *localfleet.Options) { o.Unregistered = true }

// StartLocalFleet brings up a hub and the given members as real control planes (kwok
// nodes included), registers the members in the hub (unless an option says otherwise) and
// tears all down at the end.
func StartLocalFleet(t testing.TB, members []localfleet.ClusterSpec, opts ...func(*localfleet.Options)) *LocalFleet {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	crds := CRDs()
	o := localfleet.Options{
		Dir: dir, BinDir: BinDir(), Members: members,
		HubCRDDirs: crds, MemberCRDDirs: crds,
		Log: testWriter{t},
	}
	for _, opt := range opts {
		opt(&o)
	}
	f, err := localfleet.Start(ctx, o)
	if err != nil {
		t.Fatalf("start local fleet (run `make bins` first if binaries are missing): %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, dir)
		} else {
			keepLogs(dir)
		}
		if err := f.Stop(); err != nil {
			t.Logf("stop local fleet: %v", err)
		}
	})
	lf := &LocalFleet{Fleet: f, Members: map[string]*ClusterProxy{}}
	proxy := func(c *localfleet.Cluster) *ClusterProxy {
		cl, err := client.New(c.RESTConfig(), client.Options{Scheme: Scheme()})
		if err != nil {
			t.Fatal(err)
		}
		return &ClusterProxy{Name: c.Name, Region: c.Region, Client: cl, KubeconfigPath: c.KubeconfigPath, Local: c}
	}
	lf.Hub = proxy(f.Hub)
	for _, m := range f.Members {
		lf.Members[m.Name] = proxy(m)
		lf.Members[m.Name].Faults = m
	}
	return lf
}

// hubLog sends the in-process hub's logs to the running fleet's logs/hub-manager.log,
// which a failed test prints.
var hubLog = &switchWriter{}

type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return len(p), nil
	}
	return s.w.Write(p)
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}

var setLogger sync.Once

// LogVerbosityEnv sets how much the in-process hub logs: its V-level (1 unless set; 2
// adds each status write's diff).
const LogVerbosityEnv = "INFERFLEET_E2E_LOG_V"

// hubLogger writes the in-process hub's logs to hubLog, timed to the nanosecond.
func hubLogger() logr.Logger {
	v := 1
	if s := os.Getenv(LogVerbosityEnv); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			v = n
		}
	}
	return zap.New(zap.WriteTo(hubLog), zap.UseDevMode(true), zap.Level(zapcore.Level(-v)),
		func(o *zap.Options) { o.TimeEncoder = zapcore.RFC3339NanoTimeEncoder })
}

// RunHub starts the hub manager in-process against the fleet's hub until the test ends.
func (lf *LocalFleet) RunHub(t testing.TB, o app.HubOptions) {
	t.Helper()
	lf.StartHub(t, o)
}

// StartHub is RunHub that also returns a stop, which ends the hub and waits for it. A hub
// started again after a stop is a restarted hub: it knows only what the clusters hold.
func (lf *LocalFleet) StartHub(t testing.TB, o app.HubOptions) (stop func()) {
	t.Helper()
	setLogger.Do(func() { ctrl.SetLogger(hubLogger()) })
	logFile, err := os.OpenFile(filepath.Join(lf.Fleet.Dir, "logs", "hub-manager.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	hubLog.set(logFile)
	if o.MetricsAddr == "" {
		o.MetricsAddr = "0" // off; a test that scrapes passes a free address
	}
	if o.MetricsAddr != "0" {
		lf.metricsAddr = o.MetricsAddr
	}
	o.SeveralPerProcess = true
	if o.ProbeAddr == "" {
		o.ProbeAddr = "0"
	}
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := app.NewHub(ctx, lf.Fleet.Hub.RESTConfig(), o)
	if err != nil {
		cancel()
		logFile.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ManagerStopped(t, "hub manager", mgr.Start(ctx))
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			hubLog.set(nil)
			logFile.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// dumpLogs prints the tail of every component log of a failed test, and keeps them whole
// in $INFERFLEET_E2E_LOGS when it is set.
func dumpLogs(t testing.TB, dir string) {
	keepLogs(dir)
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		if len(b) > 3000 {
			b = b[len(b)-3000:]
		}
		t.Logf("--- %s (tail)\n%s", filepath.Base(l), b)
	}
}

// keepLogs copies every component log of the fleet to $INFERFLEET_E2E_LOGS, when it is
// set, whether the test failed or not (a bench run's hub log, say).
func keepLogs(dir string) {
	keep := os.Getenv("INFERFLEET_E2E_LOGS")
	if keep == "" {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	_ = os.MkdirAll(keep, 0o755)
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil {
			_ = os.WriteFile(filepath.Join(keep, filepath.Base(l)), b, 0o644)
		}
	}
}

// Eventually polls cond until it returns nil or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = cond(); last == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, timeout, last)
}

// UpdateService re-reads a FleetInferenceService and applies mutate until the update goes
// through: the hub writes the same object (finalizers, status) meanwhile.
func UpdateService(t testing.TB, c client.Client, key client.ObjectKey, mutate func(*v1alpha1.FleetInferenceService)) {
	t.Helper()
	Eventually(t, 10*time.Second, "update service", func() error {
		svc := &v1alpha1.FleetInferenceService{}
		if err := c.Get(context.Background(), key, svc); err != nil {
			return err
		}
		mutate(svc)
		return c.Update(context.Background(), svc)
	})
}

// HasServerArg reports whether a model-server container passes flag to vLLM: one of its
// args, or a word of the GPU wrapper's one "sh -c" script.
func HasServerArg(c corev1.Container, flag string) bool {
	if len(c.Command) >= 2 && c.Command[0] == "sh" && c.Command[1] == "-c" && len(c.Args) == 1 {
		return slices.Contains(strings.Fields(c.Args[0]), flag)
	}
	return slices.Contains(c.Args, flag)
}
