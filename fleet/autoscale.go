package fleet

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/utils/ptr"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

// The fleet autoscaler follows the HorizontalPodAutoscaler's algorithm, over the model
// servers of every member at once: per metric, the ratio of the servers' average to the
// target, inside a tolerance no change, missing data counted against the change; the
// largest proposal of all metrics; then the stabilization windows and the step limits of
// the behavior; then [min, max].
// https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#algorithm-details

// DefaultScaleTolerance is the HPA's: no change while every ratio is within 10 % of 1.
const DefaultScaleTolerance = 0.1

// Scale reasons, recorded with each decision.
const (
	ScaleReasonUp            = "ScaledUp"
	ScaleReasonDown          = "ScaledDown"
	ScaleReasonSteady        = "WithinTolerance"
	ScaleReasonNoMetrics     = "NoMetrics"
	ScaleReasonStabilizing   = "Stabilizing"
	ScaleReasonUpLimited     = "ScaleUpLimit"
	ScaleReasonDownLimited   = "ScaleDownLimit"
	ScaleReasonTooFew        = "TooFewReplicas"
	ScaleReasonTooMany       = "TooManyReplicas"
	ScaleReasonScaleDisabled = "ScalingDisabled"
	// ScaleReasonIdle: scaled to zero, or staying there, with minReplicas 0.
	ScaleReasonIdle = "Idle"
	// ScaleReasonActivated: back from zero on a request an endpoint picker received.
	ScaleReasonActivated = "Activated"
)

// ScaleSignal is one metric as the model servers report it, with its target.
type ScaleSignal struct {
	// Name names the metric in messages.
	Name string
	// Target is the wanted average per ready server (a fraction for utilizations).
	Target float64
	// Values are what the ready servers that reported it said.
	Values []float64
	// Missing is how many ready servers did not report it.
	Missing int
	// Unready is how many servers are starting (not ready): they count as idle when
	// scaling up, so that a scale-up still in progress is not doubled.
	Unready int
}

// Mean is the servers' average (0 when none reported).
func (s ScaleSignal) Mean() float64 {
	if len(s.Values) == 0 {
		return 0
	}
	sum := 0.0
	for _, v := range s.Values {
		sum += v
	}
	return sum / float64(len(s.Values))
}

// ScaleRecommendation is one past recommendation, for the stabilization windows.
type ScaleRecommendation struct {
	At       time.Time
	Replicas int32
}

// ScaleEvent is one past change of the total, for the step limits.
type ScaleEvent struct {
	At     time.Time
	Change int32
}

// ScaleHistory is what the autoscaler remembers between decisions.
type ScaleHistory struct {
	Recommendations []ScaleRecommendation
	Events          []ScaleEvent
	// IdleSince is when every read since has been idle (zero while busy or unknown).
	IdleSince time.Time
}

// ScaleInput is everything one decision depends on.
type ScaleInput struct {
	Now time.Time
	// Current is the fleet total now.
	Current  int32
	Min, Max int32
	Signals  []ScaleSignal
	// Behavior is the HPA's; nil fields take the HPA's defaults (DefaultScaleBehavior).
	Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior
	History  ScaleHistory
	// Activity is what this read saw of the service's demand; it matters with Min 0 only
	// (nil: unknown, which never lets the fleet go to zero or come back).
	Activity *Activity
	// IdleWindow, with Min 0, is how long Activity must stay idle before the total goes to
	// zero.
	IdleWindow time.Duration
}

// ScaleDecision is the autoscaler's answer.
type ScaleDecision struct {
	// Desired is the new fleet total.
	Desired int32
	// Recommended is what the signals asked for, before windows, limits and bounds.
	Recommended int32
	// Reason is one of the ScaleReason constants: what settled Desired.
	Reason  string
	Message string
	// History is the input's, with this decision added and what fell out of every
	// window dropped.
	History ScaleHistory
}

// DefaultScaleBehavior is the HPA's default behavior: up at once by the larger of 4
// servers or 100 % every 15 s; down by up to 100 % every 15 s, to the largest
// recommendation of the last 5 minutes.
func DefaultScaleBehavior() autoscalingv2.HorizontalPodAutoscalerBehavior {
	return autoscalingv2.HorizontalPodAutoscalerBehavior{
		ScaleUp: &autoscalingv2.HPAScalingRules{
			StabilizationWindowSeconds: ptr.To[int32](0),
			SelectPolicy:               ptr.To(autoscalingv2.MaxChangePolicySelect),
			Policies: []autoscalingv2.HPAScalingPolicy{
				{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
				{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
			},
		},
		ScaleDown: &autoscalingv2.HPAScalingRules{
			StabilizationWindowSeconds: ptr.To[int32](300),
			SelectPolicy:               ptr.To(autoscalingv2.MaxChangePolicySelect),
			Policies: []autoscalingv2.HPAScalingPolicy{
				{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
			},
		},
	}
}

// withDefaults fills what b leaves unset from DefaultScaleBehavior.
func withDefaults(b *autoscalingv2.HorizontalPodAutoscalerBehavior) (up, down autoscalingv2.HPAScalingRules) {
	def := DefaultScaleBehavior()
	up, down = *def.ScaleUp, *def.ScaleDown
	fill := func(dst *autoscalingv2.HPAScalingRules, src *autoscalingv2.HPAScalingRules) {
		if src == nil {
			return
		}
		if src.StabilizationWindowSeconds != nil {
			dst.StabilizationWindowSeconds = src.StabilizationWindowSeconds
		}
		if src.SelectPolicy != nil {
			dst.SelectPolicy = src.SelectPolicy
		}
		if len(src.Policies) > 0 {
			dst.Policies = src.Policies
		}
		if src.Tolerance != nil {
			dst.Tolerance = src.Tolerance
		}
	}
	if b != nil {
		fill(&up, b.ScaleUp)
		fill(&down, b.ScaleDown)
	}
	return up, down
}

func tolerance(r autoscalingv2.HPAScalingRules) float64 {
	if r.Tolerance == nil {
		return DefaultScaleTolerance
	}
	return r.Tolerance.AsApproximateFloat64()
}

// Autoscale decides the fleet total. With Min 0, the servers' signals scale it no lower
// than one server; it goes to zero only after IdleWindow of idle reads, and comes back to
// one on the first request an endpoint picker receives.
func Autoscale(in ScaleInput) ScaleDecision {
	if in.Min > 0 {
		return autoscale(in)
	}
	return scaleToZero(in)
}

func autoscale(in ScaleInput) ScaleDecision {
	up, down := withDefaults(in.Behavior)
	recommended, reason, msg := recommend(in.Current, in.Signals, tolerance(up), tolerance(down))
	out := ScaleDecision{Recommended: recommended, Reason: reason, Message: msg}
	if reason == ScaleReasonNoMetrics {
		// Nothing to go on: keep the total (within bounds), and do not let the gap count
		// as a recommendation in the windows.
		out.Desired = in.Current
		bound(&out, in.Min, in.Max)
		h := ScaleHistory{Recommendations: in.History.Recommendations, Events: slices.Clone(in.History.Events)}
		if change := out.Desired - in.Current; change != 0 {
			h.Events = append(h.Events, ScaleEvent{At: in.Now, Change: change})
		}
		out.History = prune(h, in.Now, up, down)
		return out
	}

	// Stabilization: up to the smallest recommendation of the up window, down to the
	// largest of the down window (the current one included in both).
	upRec, downRec := recommended, recommended
	upCut := in.Now.Add(-window(up))
	downCut := in.Now.Add(-window(down))
	for _, r := range in.History.Recommendations {
		if r.At.After(upCut) {
			upRec = min(upRec, r.Replicas)
		}
		if r.At.After(downCut) {
			downRec = max(downRec, r.Replicas)
		}
	}
	stabilized := max(in.Current, upRec)
	stabilized = min(stabilized, downRec)
	if stabilized != recommended && out.Reason != ScaleReasonSteady {
		out.Reason = ScaleReasonStabilizing
		out.Message = fmt.Sprintf("%s; held at %d by the %s stabilization window", msg, stabilized, direction(recommended > in.Current))
	}
	out.Desired = stabilized

	// Step limits over each policy's period.
	switch {
	case out.Desired > in.Current:
		limit := stepLimit(in.Current, in.History.Events, in.Now, up, true)
		if out.Desired > limit {
			out.Desired = max(limit, in.Current)
			out.Reason, out.Message = ScaleReasonUpLimited, fmt.Sprintf("%s; limited to %d by behavior.scaleUp", msg, out.Desired)
			if ptr.Deref(up.SelectPolicy, "") == autoscalingv2.DisabledPolicySelect {
				out.Reason, out.Message = ScaleReasonScaleDisabled, msg+"; behavior.scaleUp is Disabled"
			}
		}
	case out.Desired < in.Current:
		limit := stepLimit(in.Current, in.History.Events, in.Now, down, false)
		if out.Desired < limit {
			out.Desired = min(limit, in.Current)
			out.Reason, out.Message = ScaleReasonDownLimited, fmt.Sprintf("%s; limited to %d by behavior.scaleDown", msg, out.Desired)
			if ptr.Deref(down.SelectPolicy, "") == autoscalingv2.DisabledPolicySelect {
				out.Reason, out.Message = ScaleReasonScaleDisabled, msg+"; behavior.scaleDown is Disabled"
			}
		}
	}
	bound(&out, in.Min, in.Max)

	h := ScaleHistory{
		Recommendations: append(slices.Clone(in.History.Recommendations), ScaleRecommendation{At: in.Now, Replicas: recommended}),
		Events:          slices.Clone(in.History.Events),
	}
	if change := out.Desired - in.Current; change != 0 {
		h.Events = append(h.Events, ScaleEvent{At: in.Now, Change: change})
	}
	out.History = prune(h, in.Now, up, down)
	return out
}

// bound keeps the decision within [lo, hi], saying so when it had to.
func bound(d *ScaleDecision, lo, hi int32) {
	switch {
	case d.Desired < lo:
		d.Desired, d.Reason = lo, ScaleReasonTooFew
		d.Message = fmt.Sprintf("%s; raised to minReplicas %d", d.Message, lo)
	case d.Desired > hi:
		d.Desired, d.Reason = hi, ScaleReasonTooMany
		d.Message = fmt.Sprintf("%s; capped at maxReplicas %d", d.Message, hi)
	}
}

func direction(up bool) string {
	if up {
		return "scale-up"
	}
	return "scale-down"
}

func window(r autoscalingv2.HPAScalingRules) time.Duration {
	return time.Duration(ptr.Deref(r.StabilizationWindowSeconds, 0)) * time.Second
}

// recommend is the largest total any signal asks for, as the HPA computes it per metric.
func recommend(current int32, signals []ScaleSignal, upTol, downTol float64) (int32, string, string) {
	best, have := int32(0), false
	var parts []string
	for _, s := range signals {
		n, ok, why := signalReplicas(current, s, upTol, downTol)
		parts = append(parts, why)
		if !ok {
			// A metric without data never lets the total go down.
			n = current
		} else {
			have = true
		}
		if n > best {
			best = n
		}
	}
	msg := strings.Join(parts, "; ")
	switch {
	case !have:
		return current, ScaleReasonNoMetrics, msg
	case best > current:
		return best, ScaleReasonUp, msg
	case best < current:
		return best, ScaleReasonDown, msg
	default:
		return best, ScaleReasonSteady, msg
	}
}

// signalReplicas is the HPA's replica calculation for one average-value metric.
func signalReplicas(current int32, s ScaleSignal, upTol, downTol float64) (int32, bool, string) {
	if len(s.Values) == 0 || s.Target <= 0 {
		return current, false, fmt.Sprintf("%s: no server reported it", s.Name)
	}
	ready := len(s.Values)
	avg := s.Mean()
	sum := avg * float64(ready)
	ratio := avg / s.Target
	desc := fmt.Sprintf("%s: %s per server against a target of %s (%d reporting)", s.Name, num(avg), num(s.Target), ready)
	within := func(r float64) bool {
		return (r >= 1 && r-1 <= upTol) || (r < 1 && 1-r <= downTol)
	}
	if s.Missing == 0 && s.Unready == 0 {
		if within(ratio) {
			return current, true, desc
		}
		return int32(math.Ceil(ratio * float64(ready))), true, desc
	}
	// Missing data counts against the change: at the target when going down, at zero
	// when going up; starting servers count as idle when going up.
	n := float64(ready)
	if ratio < 1 {
		sum += float64(s.Missing) * s.Target
		n += float64(s.Missing)
	} else {
		n += float64(s.Missing + s.Unready)
	}
	newRatio := sum / n / s.Target
	if within(newRatio) || (ratio < 1) != (newRatio < 1) {
		return current, true, desc
	}
	proposed := int32(math.Ceil(newRatio * n))
	if (newRatio < 1 && proposed > current) || (newRatio > 1 && proposed < current) {
		return current, true, desc
	}
	return proposed, true, desc
}

func num(v float64) string { return fmt.Sprintf("%.3g", v) }

// stepLimit is the furthest the total may move now, up or down, from the changes of
// each policy's period: with selectPolicy Max the furthest any policy allows, with Min
// the nearest, with Disabled nowhere.
func stepLimit(current int32, events []ScaleEvent, now time.Time, r autoscalingv2.HPAScalingRules, up bool) int32 {
	sel := ptr.Deref(r.SelectPolicy, autoscalingv2.MaxChangePolicySelect)
	switch {
	case sel == autoscalingv2.DisabledPolicySelect:
		return current
	case len(r.Policies) == 0 && up:
		return math.MaxInt32
	case len(r.Policies) == 0:
		return 0
	}
	// Up, the furthest is the largest; down, the smallest.
	largest := up == (sel != autoscalingv2.MinChangePolicySelect)
	var limit int32
	for i, p := range r.Policies {
		added, removed := changes(events, now, p.PeriodSeconds)
		start := current - added + removed
		var proposed int32
		switch {
		case p.Type == autoscalingv2.PodsScalingPolicy && up:
			proposed = start + p.Value
		case p.Type == autoscalingv2.PodsScalingPolicy:
			proposed = start - p.Value
		case up:
			proposed = int32(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		default:
			proposed = int32(float64(start) * (1 - float64(p.Value)/100))
		}
		switch {
		case i == 0:
			limit = proposed
		case largest:
			limit = max(limit, proposed)
		default:
			limit = min(limit, proposed)
		}
	}
	if !up {
		limit = max(limit, 0)
	}
	return limit
}

// changes sums the increases and decreases of the last period seconds.
func changes(events []ScaleEvent, now time.Time, period int32) (added, removed int32) {
	cut := now.Add(-time.Duration(period) * time.Second)
	for _, e := range events {
		if !e.At.After(cut) {
			continue
		}
		if e.Change > 0 {
			added += e.Change
		} else {
			removed -= e.Change
		}
	}
	return added, removed
}

// prune drops what no window or period can reach any more.
func prune(h ScaleHistory, now time.Time, up, down autoscalingv2.HPAScalingRules) ScaleHistory {
	keep := max(window(up), window(down))
	var period time.Duration
	for _, p := range slices.Concat(up.Policies, down.Policies) {
		period = max(period, time.Duration(p.PeriodSeconds)*time.Second)
	}
	recCut, evCut := now.Add(-keep), now.Add(-period)
	out := ScaleHistory{}
	for _, r := range h.Recommendations {
		if !r.At.Before(recCut) {
			out.Recommendations = append(out.Recommendations, r)
		}
	}
	for _, e := range h.Events {
		if !e.At.Before(evCut) {
			out.Events = append(out.Events, e)
		}
	}
	return out
}

// ScaleSignals gathers, per metric of the spec, what the model servers of every cluster
// report. Servers that are starting count as Unready; ready servers that did not report
// (their read failed, or they lack the metric), and unread ready replicas of clusters not
// read at all, count as Missing.
func ScaleSignals(metrics []v1alpha1.AutoscalingMetric, clusters []Servers, unread int) []ScaleSignal {
	out := make([]ScaleSignal, 0, len(metrics))
	for _, m := range metrics {
		s := ScaleSignal{Name: string(m.Type), Missing: unread}
		var name string
		switch m.Type {
		case v1alpha1.MetricKVCacheUtilization:
			s.Target = float64(ptr.Deref(m.AverageUtilization, 0)) / 100
		case v1alpha1.MetricWaitingRequests:
			name = VLLMWaitingMetric
		case v1alpha1.MetricRunningRequests:
			name = VLLMRunningMetric
		}
		if m.AverageValue != nil {
			s.Target = m.AverageValue.AsApproximateFloat64()
		}
		for _, c := range clusters {
			s.Unready += c.Pending
			for _, r := range c.Read {
				if !r.Ready {
					s.Unready++
					continue
				}
				var v float64
				var ok bool
				if m.Type == v1alpha1.MetricKVCacheUtilization {
					v, ok = r.KVCache()
				} else {
					v, ok = r.Values[name]
				}
				if !ok {
					s.Missing++
					continue
				}
				s.Values = append(s.Values, v)
			}
		}
		out = append(out, s)
	}
	return out
}
