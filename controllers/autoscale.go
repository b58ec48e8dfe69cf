package controllers

import (
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/fleet"
)

// Event reasons of the autoscaler.
const (
	ReasonScaled = "Scaled"
)

// scaleStates are the autoscaler's memories, per service: the recommendations and changes
// its windows and step limits look back on, and the last round it decided on. They live
// in memory, as an HPA's do; a hub that starts seeds them with the current total, so it
// scales down no sooner than one scale-down window after it starts.
type scaleStates struct {
	mu sync.Mutex
	by map[types.UID]*scaleState
}

type scaleState struct {
	history  fleet.ScaleHistory
	lastRead time.Time
}

func (s *scaleStates) get(uid types.UID, current int32, now time.Time) *scaleState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.by == nil {
		s.by = map[types.UID]*scaleState{}
	}
	st := s.by[uid]
	if st == nil {
		st = &scaleState{history: fleet.ScaleHistory{Recommendations: []fleet.ScaleRecommendation{{At: now, Replicas: current}}}}
		s.by[uid] = st
	}
	return st
}

func (s *scaleStates) forget(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.by, uid)
}

// autoscale sets the fleet total of a service with spec.autoscaling from the newest round
// of its servers' load, records the decision in status.autoscaling, and returns the total
// placement splits. Without a new round the total stands (within the bounds).
func (r *Placement) autoscale(svc, desired *v1alpha1.FleetInferenceService, now time.Time) int32 {
	a := desired.Spec.Autoscaling
	if a == nil {
		svc.Status.Autoscaling = nil
		r.scales.forget(svc.UID)
		return desired.Spec.Replicas
	}
	lo, hi := *a.MinReplicas, a.MaxReplicas
	current := desired.Spec.Replicas
	prev := svc.Status.Autoscaling
	if prev != nil {
		current = prev.DesiredReplicas
	}
	st := r.scales.get(svc.UID, current, now)
	load, ok := Load{}, false
	if r.Loads != nil {
		load, ok = r.Loads.Get(client.ObjectKeyFromObject(svc), svc.UID)
	}
	if !ok || !load.At.After(st.lastRead) {
		if prev != nil && prev.DesiredReplicas >= lo && prev.DesiredReplicas <= hi {
			return prev.DesiredReplicas
		}
		// First sight, or the bounds moved: start within them.
		d := fleet.ScaleDecision{Desired: min(max(current, lo), hi), Recommended: current, Reason: fleet.ScaleReasonNoMetrics,
			Message: "the model servers have not been read yet"}
		switch {
		case current < lo:
			d.Reason, d.Message = fleet.ScaleReasonTooFew, "raised to minReplicas"
		case current > hi:
			d.Reason, d.Message = fleet.ScaleReasonTooMany, "capped at maxReplicas"
		}
		r.recordScale(svc, prev, d, nil, current, now)
		return d.Desired
	}
	st.lastRead = load.At
	var clusters []fleet.Servers
	for _, s := range load.Clusters {
		clusters = append(clusters, s)
	}
	// Clusters with ready replicas that were not read this round: their servers count as
	// reporting nothing, which holds the total from going down on a partial view.
	unread := 0
	for _, c := range svc.Status.Clusters {
		if _, read := load.Clusters[c.Name]; !read && c.DesiredReplicas > 0 {
			unread += int(c.ReadyReplicas)
		}
	}
	signals := fleet.ScaleSignals(a.Metrics, clusters, unread)
	in := fleet.ScaleInput{Now: now, Current: current, Min: lo, Max: hi, Signals: signals, Behavior: a.Behavior, History: st.history}
	if desired.Spec.ScalesToZero() {
		in.Activity = activity(svc, load)
		in.IdleWindow = time.Duration(ptr.Deref(a.IdleWindowSeconds, v1alpha1.DefaultIdleWindowSeconds)) * time.Second
	}
	d := fleet.Autoscale(in)
	st.history = d.History
	r.recordScale(svc, prev, d, signals, current, now)
	return d.Desired
}

// activity is what a round saw of a service's demand, for scale to zero: it is known only
// when every placed cluster's servers answered and its endpoint pickers were read twice.
func activity(svc *v1alpha1.FleetInferenceService, load Load) *fleet.Activity {
	if svc.Status.Placement == nil {
		return &fleet.Activity{Why: "not placed yet"}
	}
	act := &fleet.Activity{Known: true}
	var clusters []fleet.Servers
	var why []string
	for _, d := range svc.Status.Placement.Clusters {
		if d.Reason == v1alpha1.PlacementNotRegistered {
			continue
		}
		servers, read := load.Clusters[d.Name]
		switch {
		case d.Replicas > 0 && !read:
			why = append(why, d.Name+": model servers not read")
		case read && slices.ContainsFunc(servers.Read, func(r fleet.ServerReading) bool { return r.Err != nil }):
			why = append(why, d.Name+": a model server did not answer")
		}
		clusters = append(clusters, servers)
		n, ok := load.Pickers[d.Name]
		switch {
		case ok:
			act.Requests += n
		case load.PickerErrors[d.Name] != "":
			why = append(why, d.Name+": "+load.PickerErrors[d.Name])
		default:
			why = append(why, d.Name+": endpoint pickers not read twice yet")
		}
	}
	act.Busy = fleet.ServersBusy(clusters)
	if len(why) > 0 {
		act.Known, act.Why = false, strings.Join(why, "; ")
	}
	return act
}

// recordScale writes the decision into status.autoscaling and announces a change.
func (r *Placement) recordScale(svc *v1alpha1.FleetInferenceService, prev *v1alpha1.AutoscalingStatus, d fleet.ScaleDecision, signals []fleet.ScaleSignal, current int32, now time.Time) {
	st := &v1alpha1.AutoscalingStatus{DesiredReplicas: d.Desired, RecommendedReplicas: d.Recommended, Reason: d.Reason, Message: d.Message}
	if since := d.History.IdleSince; !since.IsZero() {
		st.IdleSince = &metav1.Time{Time: since.Truncate(time.Second)}
	}
	if prev != nil {
		st.LastScaleTime = prev.LastScaleTime
	}
	for i, s := range signals {
		m := v1alpha1.AutoscalingMetricStatus{Type: svc.Spec.Autoscaling.Metrics[i].Type, Servers: int32(len(s.Values))}
		if len(s.Values) > 0 {
			avg := s.Mean()
			if m.Type == v1alpha1.MetricKVCacheUtilization {
				avg *= 100
			}
			m.Average = resource.NewMilliQuantity(int64(math.Round(avg*1000)), resource.DecimalSI)
		}
		st.Metrics = append(st.Metrics, m)
	}
	if d.Desired != current {
		st.LastScaleTime = &metav1.Time{Time: now.Truncate(time.Second)}
		direction := "up"
		if d.Desired < current {
			direction = "down"
		}
		autoscalerDecisions.WithLabelValues(direction, d.Reason).Inc()
		serviceEvent(r.Recorder, svc, corev1.EventTypeNormal, ReasonScaled, "Scale", "fleet total %d -> %d: %s", current, d.Desired, d.Message)
	}
	autoscalerDesired.WithLabelValues(svc.Namespace, svc.Name).Set(float64(d.Desired))
	svc.Status.Autoscaling = st
}
