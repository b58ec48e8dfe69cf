package controllers

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/fleet"
)

// Reasons of the FailingOver condition and its events.
const (
	ReasonFailingOver     = "ClusterUnhealthy"
	ReasonCordoned        = "Cordoned"
	ReasonAllServing      = "AllClustersServing"
	ReasonFailedBack      = "FailedBack"
	ReasonCapacityMissing = "ReplicasUnplaceable"
)

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
)

// Collectors are the controllers' metrics, for registration with the manager's registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{failovers, failbacks, serviceClusterHealth, desiredReplicas, readyReplicas, applyErrors, propagation, reconcileDuration, drillDuration, kvCacheUtilization}
}

// reachability is the monitor's view of a cluster; known is false without a monitor or
// before its first probe.
func (r *MemberSync) reachability(name string) (fleet.Reachability, bool) {
	if r.Monitor == nil {
		return fleet.Reachability{}, false
	}
	return r.Monitor.Get(name)
}

// cordoned returns the clusters the service's cordon annotation names.
func cordoned(svc *v1alpha1.FleetInferenceService) map[string]bool {
	out := map[string]bool{}
	for _, n := range svc.Cordons() {
		out[n] = true
	}
	return out
}

// observations are what the last status recorded per cluster, plus cordons: the inputs of
// the failover decision, so a restarted hub continues where it was.
func (r *MemberSync) observations(svc *v1alpha1.FleetInferenceService, selected []fleet.Cluster) map[string]fleet.Observed {
	prev := map[string]v1alpha1.ClusterStatus{}
	for _, c := range svc.Status.Clusters {
		prev[c.Name] = c
	}
	cordon := cordoned(svc)
	out := map[string]fleet.Observed{}
	for _, c := range selected {
		p := prev[c.Name]
		o := fleet.Observed{Health: p.Health, FailedOver: p.FailedOver, Desired: p.DesiredReplicas, Ready: p.ReadyReplicas,
			Cordoned: cordon[c.Name] || c.Cordoned}
		if p.HealthSince != nil {
			o.Since = p.HealthSince.Time
		}
		// The monitor's word on reachability is fresher than the last status.
		if reach, known := r.reachability(c.Name); known && !reach.Reachable {
			if o.Health != v1alpha1.Unreachable {
				o.Health, o.Since = v1alpha1.Unreachable, reach.Since
			}
		}
		out[c.Name] = o
	}
	return out
}

// recordHealth writes each cluster's health (with since-time), failed-over flag and share
// into its result, and emits the failover and failback events and metrics.
//
// The failover and failback events and counters are returned, to be emitted once the
// status that records the move is written: a move whose status write failed is decided
// again by the next reconcile and must not count twice.
func (r *MemberSync) recordHealth(svc *v1alpha1.FleetInferenceService, results []clusterResult, plan fleet.Plan, obs map[string]fleet.Observed, now time.Time) (announce []func()) {
	for i := range results {
		st := &results[i].status
		o := obs[st.Name]
		if results[i].pending {
			// Health and since stay as recorded; only the plan's share and flag apply.
			st.FailedOver = plan.FailedOver[st.Name]
			st.DesiredReplicas = plan.Shares[st.Name]
			continue
		}
		h := fleet.HealthOf(st.Reachable, results[i].unschedulable)
		since := now
		if h == o.Health && !o.Since.IsZero() {
			since = o.Since
		} else if reach, known := r.reachability(st.Name); known && h == v1alpha1.Unreachable && !reach.Reachable {
			since = reach.Since
		}
		st.Health = h
		t := metav1.NewTime(since.UTC().Truncate(time.Second))
		st.HealthSince = &t
		switch h {
		case v1alpha1.Unreachable:
			st.HealthReason = st.Message
		case v1alpha1.Degraded:
			st.HealthReason = results[i].unschedulableWhy
		default:
			st.HealthReason = ""
		}
		st.FailedOver = plan.FailedOver[st.Name]
		st.DesiredReplicas = plan.Shares[st.Name]
		if !st.Reachable {
			st.ReadyReplicas = 0
		}
		for _, state := range []v1alpha1.ClusterHealth{v1alpha1.Healthy, v1alpha1.Degraded, v1alpha1.Unreachable} {
			v := 0.0
			if state == h {
				v = 1
			}
			serviceClusterHealth.WithLabelValues(svc.Namespace, svc.Name, st.Name, string(state)).Set(v)
		}
		desiredReplicas.WithLabelValues(svc.Namespace, svc.Name, st.Name).Set(float64(st.DesiredReplicas))
		readyReplicas.WithLabelValues(svc.Namespace, svc.Name, st.Name).Set(float64(st.ReadyReplicas))
		name, desired, prevDesired, reason := st.Name, st.DesiredReplicas, o.Desired, plan.Reasons[st.Name]
		switch {
		case st.FailedOver && !o.FailedOver:
			announce = append(announce, func() {
				failovers.WithLabelValues(svc.Namespace, svc.Name, name).Inc()
				r.clusterEvent(svc, name, corev1.EventTypeWarning, ReasonFailingOver, "Failover", "%s failed over (%s): its %d replicas now run in %s",
					name, reason, prevDesired, sharesText(plan.Shares, name))
			})
		case !st.FailedOver && o.FailedOver:
			announce = append(announce, func() {
				failbacks.WithLabelValues(svc.Namespace, svc.Name, name).Inc()
				r.clusterEvent(svc, name, corev1.EventTypeNormal, ReasonFailedBack, "Failback", "%s is back: %d replicas return to it", name, desired)
			})
		}
	}
	return announce
}

func sharesText(shares map[string]int32, except string) string {
	var parts []string
	for _, n := range fleet.SortedNames(shares) {
		if n != except {
			parts = append(parts, fmt.Sprintf("%s=%d", n, shares[n]))
		}
	}
	return strings.Join(parts, ", ")
}

// failoverCondition sets FailingOver from the plan.
func (r *MemberSync) failoverCondition(svc *v1alpha1.FleetInferenceService, plan fleet.Plan, obs map[string]fleet.Observed) {
	if len(plan.FailedOver) == 0 {
		r.setCondition(svc, v1alpha1.ConditionFailingOver, metav1.ConditionFalse, ReasonAllServing, "every selected cluster runs its share")
		return
	}
	reason := ReasonFailingOver
	var parts []string
	for _, n := range fleet.SortedNames(plan.FailedOver) {
		if obs[n].Cordoned && len(plan.FailedOver) == 1 {
			reason = ReasonCordoned
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", n, plan.Reasons[n]))
	}
	msg := "share moved away from " + strings.Join(parts, ", ") + "; now " + sharesText(plan.Shares, "")
	if plan.Unplaced > 0 {
		msg += fmt.Sprintf("; %d replicas fit no healthy cluster", plan.Unplaced)
	}
	r.setCondition(svc, v1alpha1.ConditionFailingOver, metav1.ConditionTrue, reason, msg)
}
