package controllers

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/version"
)

// The hub's metrics, every one of them (the fleet package adds its own collectors).
var (
	failovers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inferfleet_failovers_total",
		Help: "Times a cluster's share of a service moved to other clusters.",
	}, []string{"namespace", "service", "cluster"})
	failbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inferfleet_failbacks_total",
		Help: "Times a failed-over cluster got its share of a service back.",
	}, []string{"namespace", "service", "cluster"})
	serviceClusterHealth = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "inferfleet_service_cluster_health",
		Help: "1 for the health state (Healthy, Degraded, Unreachable) a cluster is in for a service.",
	}, []string{"namespace", "service", "cluster", "state"})
	desiredReplicas = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "inferfleet_cluster_desired_replicas",
		Help: "Replicas of a service placed on a cluster.",
	}, []string{"namespace", "service", "cluster"})
	readyReplicas = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "inferfleet_cluster_ready_replicas",
		Help: "Ready replicas of a service in a cluster, as its model Deployment reports.",
	}, []string{"namespace", "service", "cluster"})
	applyErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inferfleet_apply_errors_total",
		Help: "Failed syncs of a service to a cluster, by the reason recorded in its status.",
	}, []string{"cluster", "reason"})
	propagation = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "inferfleet_propagation_seconds",
		Help:    "Time from the hub first seeing a service generation to that generation applied in a cluster.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120},
	}, []string{"cluster"})
	reconcileDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "inferfleet_reconcile_duration_seconds",
		Help:    "Duration of one reconcile, by controller.",
		Buckets: prometheus.DefBuckets,
	}, []string{"controller"})
	// phase is recover (cordon to the others carrying the replicas), failback (restore to
	// the cluster carrying its share again) or total (start to finish).
	drillDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "inferfleet_drill_duration_seconds",
		Help:    "Times of finished failover drills, by drilled cluster, phase (recover, failback, total) and result (Succeeded, Failed).",
		Buckets: []float64{1, 5, 10, 30, 60, 120, 300, 600, 1200},
	}, []string{"cluster", "phase", "result"})
	kvCacheUtilization = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "inferfleet_cluster_kv_cache_utilization",
		Help: "Mean KV-cache use (0 to 1) of a service's vLLM servers in a cluster, read from their /metrics; absent while none answers.",
	}, []string{"namespace", "service", "cluster"})
	autoscalerDesired = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "inferfleet_autoscaler_desired_replicas",
		Help: "The fleet total the autoscaler set for a service with spec.autoscaling.",
	}, []string{"namespace", "service"})
	autoscalerDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inferfleet_autoscaler_scale_events_total",
		Help: "Changes of a fleet total by the autoscaler, by direction (up, down) and the reason that settled it.",
	}, []string{"direction", "reason"})
	spills = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inferfleet_spills_total",
		Help: "Times replicas of a service that a cluster could not schedule moved to other clusters.",
	}, []string{"namespace", "service", "cluster"})
	spilledReplicas = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "inferfleet_cluster_spilled_replicas",
		Help: "Replicas of a service's share in a cluster that it could not schedule, running in other clusters.",
	}, []string{"namespace", "service", "cluster"})
	borrowedReplicas = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "inferfleet_cluster_borrowed_replicas",
		Help: "Replicas of a service a cluster runs for clusters that could not schedule them.",
	}, []string{"namespace", "service", "cluster"})
)

// buildInfo is 1, labelled with the hub's build.
var buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "inferfleet_build_info",
	Help: "Always 1; its labels say which build of the hub runs: version, git_commit, go_version.",
}, []string{"version", "git_commit", "go_version"})

// Collectors are the controllers' metrics, for registration with the manager's registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{buildInfo, failovers, failbacks, serviceClusterHealth, desiredReplicas, readyReplicas, applyErrors, propagation, reconcileDuration, drillDuration, kvCacheUtilization, autoscalerDesired, autoscalerDecisions, spills, spilledReplicas, borrowedReplicas}
}

var registerOnce sync.Once

// RegisterMetrics adds the hub's metrics to the manager's Prometheus registry, once per
// process.
func RegisterMetrics() {
	registerOnce.Do(func() {
		metrics.Registry.MustRegister(append(Collectors(), fleet.Collectors()...)...)
		v := version.Get()
		buildInfo.WithLabelValues(v.Version, v.GitCommit, v.GoVersion).Set(1)
	})
}
