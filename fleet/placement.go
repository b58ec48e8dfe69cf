package fleet

import (
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

// Slot is one cluster competing for replicas.
type Slot struct {
	Name   string
	Weight int32
	Min    int32
	// Max is the cluster's cap; nil is no cap.
	Max *int32
}

// Distribute spreads total replicas over slots. Each slot first gets its Min (in slot order,
// while replicas last); every further replica goes to the slot with the smallest
// (replicas+1)/weight among those below their Max (D'Hondt), ties to the earlier slot. So
// the split follows the weights as closely as whole replicas allow, is the same for the same
// inputs, and a slot of weight 0 gets only its Min. It returns the shares and the replicas
// no slot could take.
func Distribute(total int32, slots []Slot) (map[string]int32, int32) {
	shares := make(map[string]int32, len(slots))
	remaining := total
	for _, s := range slots {
		give := min(s.Min, remaining)
		if s.Max != nil {
			give = min(give, *s.Max)
		}
		shares[s.Name] = max(give, 0)
		remaining -= shares[s.Name]
	}
	for remaining > 0 {
		best := -1
		for i, s := range slots {
			if s.Weight <= 0 || (s.Max != nil && shares[s.Name] >= *s.Max) {
				continue
			}
			if best < 0 {
				best = i
				continue
			}
			b := slots[best]
			// (a+1)/wa < (b+1)/wb  <=>  (a+1)*wb < (b+1)*wa, in integers.
			if int64(shares[s.Name]+1)*int64(b.Weight) < int64(shares[b.Name]+1)*int64(s.Weight) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		shares[slots[best].Name]++
		remaining--
	}
	return shares, remaining
}

// EvenSplit spreads total replicas evenly over clusters in the given order: each gets
// total/n, and the first total%n get one more.
func EvenSplit(total int32, clusters []Cluster) map[string]int32 {
	slots := make([]Slot, len(clusters))
	for i, c := range clusters {
		slots[i] = Slot{Name: c.Name, Weight: 1}
	}
	shares, _ := Distribute(total, slots)
	return shares
}

// Placement is where a service's replicas go.
type Placement struct {
	// Selected clusters, in placement order.
	Selected []Cluster
	// Shares maps each selected cluster to its replicas.
	Shares map[string]int32
	// Missing names clusters placement.clusters lists that are not registered.
	Missing []string
	// Slots are the selected clusters with their weights and limits.
	Slots []Slot
}

// Place selects a service's clusters among the registered ones and splits its replicas by
// weight within each cluster's limits. svc must be defaulted.
func Place(svc *v1alpha1.FleetInferenceService, all []Cluster) (Placement, error) {
	names := make([]string, 0, len(svc.Spec.Placement.Clusters))
	byName := map[string]v1alpha1.ClusterPlacement{}
	for _, c := range svc.Spec.Placement.Clusters {
		names = append(names, c.Name)
		byName[c.Name] = c
	}
	selected, missing, err := Select(all, names, svc.Spec.Placement.ClusterSelector)
	if err != nil {
		return Placement{}, err
	}
	slots := make([]Slot, len(selected))
	for i, c := range selected {
		slots[i] = Slot{Name: c.Name, Weight: 1}
		if p, ok := byName[c.Name]; ok {
			if p.Weight != nil {
				slots[i].Weight = *p.Weight
			}
			if p.MinReplicas != nil {
				slots[i].Min = *p.MinReplicas
			}
			slots[i].Max = p.MaxReplicas
		}
	}
	shares, _ := Distribute(svc.Spec.Replicas, slots)
	return Placement{Selected: selected, Shares: shares, Missing: missing, Slots: slots}, nil
}

// Observed is what the hub last recorded about a cluster for one service.
type Observed struct {
	Health v1alpha1.ClusterHealth
	Since  time.Time
	// Rounded says Since was read from status, which keeps whole seconds: the change came
	// within the second after it, and timers run from the end of that second so that none
	// fires early.
	Rounded    bool
	FailedOver bool
	// Desired is the share the hub last gave the cluster, Ready what it reports ready.
	Desired, Ready int32
	// Cordoned takes the cluster out at once (drills).
	Cordoned bool
	// Scheduled is how many of its model-server pods are on a node, Unschedulable how many
	// the cluster cannot schedule, and ScaleUp what the cluster autoscaler last said of
	// them.
	Scheduled     int32
	Unschedulable int32
	ScaleUp       v1alpha1.ScaleUpState
	// Spilled is how much of its share the last decision ran elsewhere for want of room.
	Spilled int32
}

// Plan is the failover decision for one service.
type Plan struct {
	// Shares are the replicas each selected cluster runs now.
	Shares map[string]int32
	// FailedOver marks the clusters whose share runs elsewhere.
	FailedOver map[string]bool
	// Unplaced replicas fit nowhere healthy (every healthy cluster is at its max); they
	// stay with the failed-over clusters they belong to.
	Unplaced int32
	// RecheckAfter is when a timer (unhealthyAfter, failbackAfter) next expires; 0 if none.
	RecheckAfter time.Duration
	// Reasons say, per failed-over or out-of-capacity cluster, why.
	Reasons map[string]string
	// Spilled is, per cluster out of capacity, how much of its share runs elsewhere; its
	// share then holds one more, left requested as a probe for room.
	Spilled map[string]int32
	// Borrowed is, per cluster, how many of its replicas it runs for clusters out of
	// capacity.
	Borrowed map[string]int32
}

// probe is the replica a cluster out of capacity keeps requested.
func (p Plan) probe(name string) int32 {
	if p.Spilled[name] > 0 {
		return 1
	}
	return 0
}

// Decide applies the failover policy to a placement, given what was observed:
//   - a cluster unhealthy (Degraded or Unreachable) for unhealthyAfter, or cordoned, fails
//     over: its share is redistributed over the others (by weight, within their max);
//   - a failed-over cluster fails back after failbackAfter of continuous health, and the
//     clusters that covered for it keep their extra replicas until it has its share ready
//     (make before break);
//   - health that changes sooner than those timers moves nothing, so a cluster that
//     bounces causes at most one move;
//   - a reachable cluster that cannot schedule some of its replicas (Degraded) does not
//     fail over: those replicas spill (see spill).
//
// Decide is pure: the same observations at the same time give the same plan.
func Decide(svc *v1alpha1.FleetInferenceService, p Placement, obs map[string]Observed, now time.Time) Plan {
	f := svc.Spec.Placement.Failover
	unhealthyAfter, failbackAfter := v1alpha1.DefaultUnhealthyAfter, v1alpha1.DefaultFailbackAfter
	if f.UnhealthyAfter != nil {
		unhealthyAfter = f.UnhealthyAfter.Duration
	}
	if f.FailbackAfter != nil {
		failbackAfter = f.FailbackAfter.Duration
	}
	plan := Plan{FailedOver: map[string]bool{}, Reasons: map[string]string{}, Spilled: map[string]int32{}, Borrowed: map[string]int32{}}
	recheck := func(d time.Duration) {
		if d > 0 && (plan.RecheckAfter == 0 || d < plan.RecheckAfter) {
			plan.RecheckAfter = d
		}
	}
	for _, c := range p.Selected {
		o := obs[c.Name]
		fo := o.FailedOver
		switch {
		case o.Cordoned:
			fo = true
			plan.Reasons[c.Name] = "cordoned"
		case f.Policy == v1alpha1.FailoverNone:
			fo = false
		case o.Health == v1alpha1.Unreachable:
			if elapsed := o.elapsed(now); elapsed >= unhealthyAfter {
				fo = true
			} else if !fo {
				recheck(unhealthyAfter - elapsed)
			}
			if fo {
				plan.Reasons[c.Name] = strings.ToLower(string(o.Health)) + " since " + o.Since.UTC().Format(time.RFC3339)
			}
		case fo:
			// Healthy again: back only after failbackAfter of continuous health.
			if elapsed := o.elapsed(now); elapsed >= failbackAfter {
				fo = false
			} else {
				recheck(failbackAfter - elapsed)
				plan.Reasons[c.Name] = "healthy since " + o.Since.UTC().Format(time.RFC3339) + ", failing back after " + failbackAfter.String()
			}
		}
		if fo {
			plan.FailedOver[c.Name] = true
		}
	}
	if len(plan.FailedOver) == 0 {
		plan.Shares = copyShares(p.Shares)
	} else {
		var healthy []Slot
		for _, s := range p.Slots {
			if !plan.FailedOver[s.Name] {
				healthy = append(healthy, s)
			}
		}
		shares, unplaced := Distribute(svc.Spec.Replicas, healthy)
		// What fits nowhere stays with the failed-over clusters, up to their normal share.
		names := make([]string, 0, len(plan.FailedOver))
		for _, s := range p.Slots {
			if plan.FailedOver[s.Name] {
				names = append(names, s.Name)
			}
		}
		for _, n := range names {
			give := min(unplaced, p.Shares[n])
			shares[n] = give
			unplaced -= give
		}
		plan.Shares, plan.Unplaced = shares, unplaced
	}
	if svc.Spec.Placement.Spillover.Policy != v1alpha1.SpilloverNone {
		plan.spill(svc.Spec.Placement.Spillover, p, obs, now, recheck)
	}
	// Make before break: while a cluster in placement has fewer ready replicas than its
	// share (one failing back, or gaining replicas from a rebalance), the others keep the
	// extra they had (up to their max) instead of dropping it at once.
	short := false
	for _, c := range p.Selected {
		if !plan.FailedOver[c.Name] && obs[c.Name].Ready < plan.Shares[c.Name]-plan.probe(c.Name) {
			short = true
		}
	}
	if short {
		for _, s := range p.Slots {
			if plan.FailedOver[s.Name] || plan.Spilled[s.Name] > 0 {
				continue
			}
			o := obs[s.Name]
			if !o.FailedOver && o.Desired > plan.Shares[s.Name] {
				keep := o.Desired
				if s.Max != nil {
					keep = min(keep, *s.Max)
				}
				plan.Shares[s.Name] = keep
			}
		}
	}
	return plan
}

// spill moves the replicas that reachable clusters cannot schedule, and only those, to the
// other clusters in the plan, by weight within their maxReplicas:
//   - replicas unschedulable for spillover.after spill; at once when the cluster
//     autoscaler says no scale-up can or did happen for them (NotTriggered, Failed), after
//     spillover.scaleUpTimeout when it says one is under way (Triggered);
//   - the cluster keeps one of them requested (the probe): the cluster autoscaler keeps
//     trying to make room, and once the probe is scheduled the cluster has room again and
//     every spilled replica returns (the borrowers keep theirs until it has them ready);
//   - what no other cluster has room for stays where it is.
func (plan *Plan) spill(so v1alpha1.SpilloverSpec, p Placement, obs map[string]Observed, now time.Time, recheck func(time.Duration)) {
	after, timeout := v1alpha1.DefaultSpillAfter, v1alpha1.DefaultScaleUpTimeout
	if so.After != nil {
		after = so.After.Duration
	}
	if so.ScaleUpTimeout != nil {
		timeout = so.ScaleUpTimeout.Duration
	}
	base := copyShares(plan.Shares)
	spilled := map[string]int32{}
	reasons := map[string]string{}
	for _, c := range p.Selected {
		if plan.FailedOver[c.Name] {
			continue
		}
		o := obs[c.Name]
		n := min(o.Spilled, base[c.Name])
		var probe int32
		if n > 0 {
			probe = 1
		}
		switch {
		case n > 0 && o.Unschedulable == 0 && o.Health != v1alpha1.Unreachable:
			// The probe was scheduled: the cluster has room again. (An unreachable
			// cluster reports nothing: what it spilled stays away until it answers.)
			n = 0
		case o.Unschedulable > probe:
			if wait := spillWait(o, after, timeout, now); wait > 0 {
				recheck(wait)
				break
			}
			// What does not fit next to the pods it could schedule spills. Scaling the
			// Deployment down removes unscheduled pods first, so those stay scheduled.
			n = max(base[c.Name]-o.Scheduled, 0)
		}
		if n > 0 {
			spilled[c.Name] = n
			reasons[c.Name] = spillWhy(o)
		}
	}
	if len(spilled) == 0 {
		return
	}
	var slots []Slot
	var total int32
	for _, s := range p.Slots {
		if plan.FailedOver[s.Name] {
			continue
		}
		if n := spilled[s.Name]; n > 0 {
			room := base[s.Name] - n
			if s.Max == nil || *s.Max > room {
				s.Max = &room
			}
		}
		slots = append(slots, s)
		total += base[s.Name]
	}
	shares, unplaced := Distribute(total, slots)
	// No other cluster has room for these: they stay (unschedulable) where they are.
	for _, s := range slots {
		back := min(unplaced, spilled[s.Name])
		spilled[s.Name] -= back
		shares[s.Name] += back
		unplaced -= back
	}
	for _, s := range slots {
		plan.Shares[s.Name] = shares[s.Name]
		switch n := spilled[s.Name]; {
		case n > 0:
			plan.Spilled[s.Name] = n
			plan.Shares[s.Name]++
			plan.Reasons[s.Name] = reasons[s.Name]
		case shares[s.Name] > base[s.Name]:
			plan.Borrowed[s.Name] = shares[s.Name] - base[s.Name]
		}
	}
}

// elapsed is how long the cluster has been in its health at least.
func (o Observed) elapsed(now time.Time) time.Duration {
	d := now.Sub(o.Since)
	if o.Rounded {
		d -= time.Second
	}
	return d
}

// spillWait is how long unschedulable replicas wait before they spill.
func spillWait(o Observed, after, timeout time.Duration, now time.Time) time.Duration {
	switch o.ScaleUp {
	case v1alpha1.ScaleUpNotTriggered, v1alpha1.ScaleUpFailed:
		return 0
	case v1alpha1.ScaleUpTriggered:
		after = timeout
	}
	if o.Since.IsZero() {
		return after
	}
	return after - o.elapsed(now)
}

// spillWhy says why a cluster's replicas spilled.
func spillWhy(o Observed) string {
	why := "unschedulable since " + o.Since.UTC().Format(time.RFC3339)
	switch o.ScaleUp {
	case v1alpha1.ScaleUpNotTriggered:
		why += ", no node pool can grow to fit them"
	case v1alpha1.ScaleUpFailed:
		why += ", scale-up failed"
	case v1alpha1.ScaleUpTriggered:
		why += ", scale-up under way"
	}
	return why
}

func copyShares(in map[string]int32) map[string]int32 {
	out := make(map[string]int32, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

// SortedNames returns a map's keys in order.
func SortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Reachabilities tells which members' API servers answer (the Monitor); known is false
// before the first probe.
type Reachabilities interface {
	Get(name string) (r Reachability, known bool)
}

// Observe gathers the inputs of the failover decision for a service's selected clusters:
// each cluster's health and since-time from its status entry, the share and failed-over
// flag of the last decision, its ready replicas, and cordons. A restarted hub so continues
// where it was. The monitor's word on reachability (nil: none) is fresher than the status.
func Observe(svc *v1alpha1.FleetInferenceService, selected []Cluster, reach Reachabilities) map[string]Observed {
	cordon := map[string]bool{}
	for _, n := range svc.Cordons() {
		cordon[n] = true
	}
	out := make(map[string]Observed, len(selected))
	for _, c := range selected {
		st, _ := svc.Status.Cluster(c.Name)
		o := Observed{Health: st.Health, Ready: st.ReadyReplicas, Cordoned: cordon[c.Name] || c.Cordoned,
			Scheduled: st.ScheduledReplicas, Unschedulable: st.UnschedulableReplicas, ScaleUp: st.ScaleUp}
		if d, ok := svc.Status.Placement.Decision(c.Name); ok {
			o.Desired, o.FailedOver, o.Spilled = d.Replicas, d.FailedOver(), d.Spilled
		} else {
			// Status written before placement was recorded on its own.
			o.Desired, o.FailedOver = st.DesiredReplicas, st.FailedOver
		}
		if st.HealthSince != nil {
			o.Since, o.Rounded = st.HealthSince.Time, true
		}
		if reach != nil {
			// An entry already Unreachable keeps its date unless the monitor saw the loss
			// earlier (or in the same second, to the nanosecond): every path to
			// "unreachable" dates it from the first sign.
			if r, known := reach.Get(c.Name); known && !r.Reachable && (o.Health != v1alpha1.Unreachable || r.Since.Before(o.Since.Add(time.Second))) {
				o.Health, o.Since, o.Rounded = v1alpha1.Unreachable, r.Since, r.Rounded
			}
		}
		out[c.Name] = o
	}
	return out
}

// Record turns a plan into the placement status users read and member sync follows: per
// cluster its replicas, why, and since when (kept from prev while share and reason hold).
func Record(svc *v1alpha1.FleetInferenceService, p Placement, plan Plan, obs map[string]Observed, prev *v1alpha1.PlacementStatus, now time.Time) *v1alpha1.PlacementStatus {
	out := &v1alpha1.PlacementStatus{ObservedGeneration: svc.Generation, Unplaced: plan.Unplaced}
	at := metav1.NewTime(now.UTC().Truncate(time.Second))
	add := func(d v1alpha1.ClusterDecision) {
		if old, ok := prev.Decision(d.Name); ok && old.Reason == d.Reason && old.Replicas == d.Replicas && old.Since != nil {
			d.Since = old.Since.DeepCopy()
		} else {
			d.Since = at.DeepCopy()
		}
		out.Clusters = append(out.Clusters, d)
	}
	for _, c := range p.Selected {
		d := v1alpha1.ClusterDecision{Name: c.Name, Region: c.Region, Replicas: plan.Shares[c.Name], Reason: v1alpha1.PlacementPlaced}
		switch {
		case plan.FailedOver[c.Name] && obs[c.Name].Cordoned:
			d.Reason, d.Message = v1alpha1.PlacementCordoned, plan.Reasons[c.Name]
		case plan.FailedOver[c.Name]:
			d.Reason, d.Message = v1alpha1.PlacementFailedOver, plan.Reasons[c.Name]
		case plan.Spilled[c.Name] > 0:
			d.Reason, d.Spilled = v1alpha1.PlacementOutOfCapacity, plan.Spilled[c.Name]
			d.Message = fmt.Sprintf("%d of its replicas run in %s (%s); one stays requested here until there is room",
				d.Spilled, strings.Join(borrowers(p, plan), ", "), plan.Reasons[c.Name])
		case d.Replicas > p.Shares[c.Name]:
			d.Borrowed = plan.Borrowed[c.Name]
			d.Reason = v1alpha1.PlacementCovering
			d.Message = coveringMessage(c.Name, p, plan, obs)
		}
		add(d)
	}
	for _, n := range p.Missing {
		add(v1alpha1.ClusterDecision{Name: n, Reason: v1alpha1.PlacementNotRegistered, Message: "cluster is not registered with the hub"})
	}
	return out
}

// borrowers names the clusters that run replicas for clusters out of capacity.
func borrowers(p Placement, plan Plan) []string {
	var out []string
	for _, c := range p.Selected {
		if plan.Borrowed[c.Name] > 0 {
			out = append(out, c.Name)
		}
	}
	return out
}

// coveringMessage says why a cluster runs more than its weighted share.
func coveringMessage(name string, p Placement, plan Plan, obs map[string]Observed) string {
	var failed, short []string
	for _, c := range p.Selected {
		switch {
		case c.Name == name:
		case plan.FailedOver[c.Name]:
			failed = append(failed, c.Name)
		case plan.Spilled[c.Name] > 0:
			failed = append(failed, c.Name+" (out of capacity)")
		case obs[c.Name].Ready < plan.Shares[c.Name]:
			short = append(short, c.Name)
		}
	}
	extra := plan.Shares[name] - p.Shares[name]
	switch {
	case len(failed) > 0:
		return fmt.Sprintf("%d more than its share, for %s", extra, strings.Join(failed, ", "))
	case len(short) > 0:
		return fmt.Sprintf("keeps %d more than its share until %s has its share ready", extra, strings.Join(short, ", "))
	}
	return fmt.Sprintf("%d more than its share", extra)
}
