package fleet

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

// Reachability is a member's API reachability as the monitor last saw it.
type Reachability struct {
	Reachable bool
	// Since is when Reachable last changed (or the monitor first saw the cluster).
	Since time.Time
	// Rounded says Since has whole seconds only (recorded by an older hub): the change
	// came within the second after it.
	Rounded bool
	// Reason says why it is unreachable.
	Reason string
}

// ClusterGetter returns an engaged member cluster.
type ClusterGetter interface {
	GetCluster(ctx context.Context, name multicluster.ClusterName) (cluster.Cluster, error)
}

// ClusterLister lists the registered member clusters.
type ClusterLister interface {
	List(ctx context.Context) ([]Cluster, error)
}

// clusterHealth is a gauge per cluster and state: 1 for the state the cluster is in.
var clusterHealth = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "inferfleet_cluster_reachable",
	Help: "1 when the member cluster's API server answers /readyz, 0 when it does not.",
}, []string{"cluster"})

// Collectors are the monitor's metrics, for registration with the manager's registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{clusterHealth, engageFailures}
}

// Monitor probes every registered member's API server (/readyz, short timeout) on an
// interval, keeps each one's reachability with the time it last changed, and announces
// changes on a channel so reconcilers act at once.
type Monitor struct {
	Clusters ClusterGetter
	Registry ClusterLister
	// Kubeconfigs, when set, gives each registration's kubeconfig, so that a cluster the
	// hub cannot connect to, or whose API server refuses it, says why (DiagnoseKubeconfig).
	Kubeconfigs KubeconfigGetter
	// Hub, when set, receives every change as annotations on the cluster's registration
	// Secret in Namespace: reconcilers watching registrations act at once, and people see
	// it with kubectl.
	Hub       client.Client
	Namespace string
	// Interval between probes of one cluster; Timeout bounds one probe.
	Interval, Timeout time.Duration
	Now               func() time.Time

	// ConnectGrace is how long after start a cluster the provider has not connected yet
	// counts as unknown rather than unreachable.
	ConnectGrace time.Duration
	// FailureThreshold is how many probes in a row must fail before a reachable cluster
	// counts as unreachable (a slow probe on a busy hub is not a lost region). The
	// unreachable time starts at the first failure of the run.
	FailureThreshold int

	started   time.Time
	mu        sync.Mutex
	connected map[string]bool
	failures  map[string]failureRun
	state     map[string]Reachability
	clients   map[string]probeClient
	changes   chan event.GenericEvent
}

type probeClient struct {
	cfg  *rest.Config
	rest rest.Interface
}

// NewMonitor returns a monitor with defaults filled in (2s interval, 2s timeout).
func NewMonitor(clusters ClusterGetter, registry ClusterLister) *Monitor {
	return &Monitor{Clusters: clusters, Registry: registry, Interval: 2 * time.Second, Timeout: 2 * time.Second, Now: time.Now,
		ConnectGrace: 30 * time.Second, FailureThreshold: 2, connected: map[string]bool{}, failures: map[string]failureRun{},
		state: map[string]Reachability{}, clients: map[string]probeClient{}, changes: make(chan event.GenericEvent, 64)}
}

// Changes delivers an event whenever a cluster's reachability changes.
func (m *Monitor) Changes() <-chan event.GenericEvent { return m.changes }

// Get returns a cluster's reachability; ok is false before its first probe.
func (m *Monitor) Get(name string) (Reachability, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.state[name]
	return r, ok
}

const notConnected = "not connected: "

// EverConnected reports whether the monitor has reached the cluster since it started.
func (m *Monitor) EverConnected(name string) bool { return m.everConnected(name) }

func (m *Monitor) everConnected(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.connected[name]
}

// Start probes until ctx ends. It implements manager.Runnable.
func (m *Monitor) Start(ctx context.Context) error {
	m.started = m.Now()
	m.resume(ctx)
	wait.NonSlidingUntilWithContext(ctx, m.probeAll, m.Interval)
	return nil
}

// resume takes up what an earlier hub recorded on the registration Secrets: a cluster it
// saw unreachable stays so from the time it was first seen failing, and is not given the
// connect grace of a cluster not heard of yet. A hub restarted during an outage thus fails
// over when the outage is unhealthyAfter old, not unhealthyAfter after the restart. A
// cluster it saw reachable stays reachable since then: the first probe that finds it so
// changes nothing and records nothing, and losing it takes FailureThreshold probes, as
// for the hub that recorded it.
func (m *Monitor) resume(ctx context.Context) {
	if m.Hub == nil {
		return
	}
	var secrets corev1.SecretList
	if err := m.Hub.List(ctx, &secrets, client.InNamespace(m.Namespace)); err != nil {
		log.FromContext(ctx).Error(err, "health monitor: read the recorded reachability")
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range secrets.Items {
		a := s.Annotations
		reachable := a[AnnotationReachable]
		if !IsRegistration(s.Labels) || (reachable != "false" && reachable != "true") {
			continue
		}
		v := a[AnnotationReachableSince]
		since, err := time.Parse(time.RFC3339, v)
		if err != nil {
			continue
		}
		if reachable == "true" {
			m.state[s.Name] = Reachability{Reachable: true, Since: since, Rounded: !strings.Contains(v, ".")}
			continue
		}
		m.state[s.Name] = Reachability{Reachable: false, Since: since, Rounded: !strings.Contains(v, "."), Reason: a[AnnotationReachReason]}
		m.failures[s.Name] = failureRun{count: m.FailureThreshold, first: since}
	}
}

// knownDown: the cluster is recorded unreachable (by this hub, or an earlier one).
func (m *Monitor) knownDown(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.state[name]
	return ok && !r.Reachable
}

// NeedLeaderElection: only the leader acts on health.
func (m *Monitor) NeedLeaderElection() bool { return true }

func (m *Monitor) probeAll(ctx context.Context) {
	clusters, err := m.Registry.List(ctx)
	if err != nil {
		log.FromContext(ctx).Error(err, "health monitor: list clusters")
		return
	}
	var wg sync.WaitGroup
	for _, c := range clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, reason := m.probe(ctx, c.Name)
			if ok && c.SourceUnhealthy != "" {
				// The source knows better than /readyz: a control plane its manager
				// reports unhealthy may still answer.
				ok, reason = false, c.SourceUnhealthy
			}
			if !ok && strings.HasPrefix(reason, notConnected) && !m.everConnected(c.Name) && m.Now().Sub(m.started) < m.ConnectGrace && !m.knownDown(c.Name) {
				// Just started (a restarted hub, say): the provider has not connected yet.
				// Unknown is not unreachable; recording it would move replicas for nothing.
				return
			}
			m.record(c.Name, ok, reason)
		}()
	}
	wg.Wait()
	m.forget(clusters)
}

// probe asks a member's API server for /readyz.
func (m *Monitor) probe(ctx context.Context, name string) (bool, string) {
	cl, err := m.Clusters.GetCluster(ctx, multicluster.ClusterName(name))
	if err != nil {
		return false, notConnected + m.diagnose(ctx, name, err.Error())
	}
	rc, err := m.client(name, cl.GetConfig())
	if err != nil {
		return false, err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	// No retries: a 429 with Retry-After would be retried until the probe times out, and
	// the reason would say timeout instead of what the server answered.
	if err := rc.Get().AbsPath("/readyz").MaxRetries(0).Do(ctx).Error(); err != nil {
		var unknownCA x509.UnknownAuthorityError
		if apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) || errors.As(err, &unknownCA) {
			return false, "readyz: " + m.diagnose(ctx, name, err.Error())
		}
		return false, "readyz: " + err.Error()
	}
	return true, ""
}

// diagnose is what DiagnoseKubeconfig finds wrong with a cluster's registered kubeconfig,
// or otherwise the error seen.
func (m *Monitor) diagnose(ctx context.Context, name, seen string) string {
	if m.Kubeconfigs == nil {
		return seen
	}
	raw, err := m.Kubeconfigs.Kubeconfig(ctx, name)
	if err != nil || len(raw) == 0 {
		return seen
	}
	if why := DiagnoseKubeconfig(ctx, raw, m.Now(), m.Timeout); why != "" {
		return why
	}
	return seen
}

// client caches one REST client per cluster config (a rotated kubeconfig is a new config).
func (m *Monitor) client(name string, cfg *rest.Config) (rest.Interface, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pc, ok := m.clients[name]; ok && pc.cfg == cfg {
		return pc.rest, nil
	}
	c := rest.CopyConfig(cfg)
	c.Timeout = m.Timeout
	dc, err := discovery.NewDiscoveryClientForConfig(c)
	if err != nil {
		return nil, err
	}
	m.clients[name] = probeClient{cfg: cfg, rest: dc.RESTClient()}
	return dc.RESTClient(), nil
}

// failureRun counts a cluster's consecutive failed probes since the first of them.
type failureRun struct {
	count int
	first time.Time
}

func (m *Monitor) record(name string, reachable bool, reason string) {
	m.mu.Lock()
	now := m.Now()
	prev, seen := m.state[name]
	since := now
	if reachable {
		m.connected[name] = true
		delete(m.failures, name)
	} else {
		run := m.failures[name]
		if run.count == 0 {
			run.first = now
		}
		run.count++
		m.failures[name] = run
		since = run.first
		if seen && prev.Reachable && run.count < m.FailureThreshold {
			m.mu.Unlock()
			return
		}
	}
	changed := !seen || prev.Reachable != reachable
	if changed {
		m.state[name] = Reachability{Reachable: reachable, Since: since, Reason: reason}
	} else if !reachable {
		prev.Reason = reason
		m.state[name] = prev
	}
	m.mu.Unlock()
	v := 0.0
	if reachable {
		v = 1
	}
	clusterHealth.WithLabelValues(name).Set(v)
	if changed {
		log.Log.WithName("health").Info("member reachability changed", "cluster", name, "reachable", reachable, "reason", reason)
		m.publish(name, reachable, since, reason)
		select {
		case m.changes <- event.GenericEvent{Object: &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: name}}}:
		default: // a reconcile of everything is already pending
		}
	}
}

// SinceFormat is RFC 3339 to the millisecond: a restarted hub takes an outage's timers up
// from it without rounding them a second early.
const SinceFormat = "2006-01-02T15:04:05.000Z07:00"

// Annotations on a registration Secret with the monitor's last word on the cluster.
const (
	AnnotationReachable      = "fleet.inferfleet.dev/reachable"
	AnnotationReachableSince = "fleet.inferfleet.dev/reachable-since"
	AnnotationReachReason    = "fleet.inferfleet.dev/unreachable-reason"
)

// publish records a reachability change on the cluster's registration Secret.
func (m *Monitor) publish(name string, reachable bool, since time.Time, reason string) {
	if m.Hub == nil {
		return
	}
	if len(reason) > 512 {
		reason = reason[:512]
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{
		AnnotationReachable:      strconv.FormatBool(reachable),
		AnnotationReachableSince: since.UTC().Format(SinceFormat),
		AnnotationReachReason:    reason,
	}}})
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: m.Namespace}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Hub.Patch(ctx, s, client.RawPatch(types.MergePatchType, patch)); err != nil {
		log.Log.WithName("health").Error(err, "record reachability on the registration Secret", "cluster", name)
	}
}

// forget drops clusters that are no longer registered.
func (m *Monitor) forget(current []Cluster) {
	keep := map[string]bool{}
	for _, c := range current {
		keep[c.Name] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for n := range m.state {
		if !keep[n] {
			delete(m.state, n)
			delete(m.clients, n)
			clusterHealth.DeleteLabelValues(n)
		}
	}
}

// HealthOf combines reachability with what the service saw in the cluster into the
// cluster's health for that service: Unreachable, Degraded (reachable, but its pods
// cannot be scheduled), or Healthy.
func HealthOf(reachable, unschedulable bool) v1alpha1.ClusterHealth {
	switch {
	case !reachable:
		return v1alpha1.Unreachable
	case unschedulable:
		return v1alpha1.Degraded
	}
	return v1alpha1.Healthy
}
