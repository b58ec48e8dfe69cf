package fleet

import (
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

func waiting(target float64, values ...float64) ScaleSignal {
	return ScaleSignal{Name: "waiting requests", Target: target, Values: values}
}

func TestAutoscale(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	ago := func(s int) time.Time { return now.Add(-time.Duration(s) * time.Second) }
	quickDown := &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](0)}}
	cases := []struct {
		name     string
		in       ScaleInput
		desired  int32
		reason   string
		recorded bool // the recommendation joins the history
	}{
		{name: "load doubles: twice the servers",
			in:      ScaleInput{Current: 2, Min: 1, Max: 10, Signals: []ScaleSignal{waiting(5, 10, 10)}},
			desired: 4, reason: ScaleReasonUp, recorded: true},
		{name: "within the 10% tolerance: no change",
			in:      ScaleInput{Current: 2, Min: 1, Max: 10, Signals: []ScaleSignal{waiting(5, 5.4, 5.4)}},
			desired: 2, reason: ScaleReasonSteady, recorded: true},
		{name: "a custom tolerance widens it",
			in: ScaleInput{Current: 2, Min: 1, Max: 10, Signals: []ScaleSignal{waiting(5, 6, 6)},
				Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: &autoscalingv2.HPAScalingRules{Tolerance: ptr.To(resource.MustParse("0.25"))}}},
			desired: 2, reason: ScaleReasonSteady, recorded: true},
		{name: "scale-down held by a higher recommendation in the 5-minute window",
			in: ScaleInput{Current: 4, Min: 1, Max: 10, Signals: []ScaleSignal{waiting(5, 1, 1, 1, 1)},
				History: ScaleHistory{Recommendations: []ScaleRecommendation{{At: ago(60), Replicas: 4}}}},
			desired: 4, reason: ScaleReasonStabilizing, recorded: true},
		{name: "scale-down once the window has passed",
			in: ScaleInput{Current: 4, Min: 1, Max: 10, Signals: []ScaleSignal{waiting(5, 1, 1, 1, 1)},
				History: ScaleHistory{Recommendations: []ScaleRecommendation{{At: ago(301), Replicas: 4}}}},
			desired: 1, reason: ScaleReasonDown, recorded: true},
		{name: "a steep rise goes up by at most max(4 servers, 100%) per 15s",
			in:      ScaleInput{Current: 2, Min: 1, Max: 100, Signals: []ScaleSignal{waiting(5, 50, 50)}},
			desired: 6, reason: ScaleReasonUpLimited, recorded: true},
		{name: "selectPolicy Min takes the policy that allows the least",
			in: ScaleInput{Current: 2, Min: 1, Max: 100, Signals: []ScaleSignal{waiting(5, 50, 50)},
				Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: &autoscalingv2.HPAScalingRules{SelectPolicy: ptr.To(autoscalingv2.MinChangePolicySelect)}}},
			desired: 4, reason: ScaleReasonUpLimited, recorded: true},
		{name: "the period's earlier rise counts against the limit",
			in: ScaleInput{Current: 6, Min: 1, Max: 100, Signals: []ScaleSignal{waiting(5, 50, 50, 50, 50, 50, 50)},
				History: ScaleHistory{Events: []ScaleEvent{{At: ago(5), Change: 4}}}},
			desired: 6, reason: ScaleReasonUpLimited, recorded: true},
		{name: "capped at maxReplicas",
			in:      ScaleInput{Current: 4, Min: 1, Max: 5, Signals: []ScaleSignal{waiting(5, 10, 10, 10, 10)}},
			desired: 5, reason: ScaleReasonTooMany, recorded: true},
		{name: "idle, raised to minReplicas",
			in:      ScaleInput{Current: 4, Min: 2, Max: 10, Signals: []ScaleSignal{waiting(5, 0, 0, 0, 0)}, Behavior: quickDown},
			desired: 2, reason: ScaleReasonTooFew, recorded: true},
		{name: "idle with minReplicas 0: the signals alone keep one server (only the idle window empties the fleet)",
			in:      ScaleInput{Current: 4, Min: 0, Max: 10, Signals: []ScaleSignal{waiting(5, 0, 0, 0, 0)}, Behavior: quickDown},
			desired: 1, reason: ScaleReasonTooFew, recorded: true},
		{name: "servers without data count at the target when going down",
			// Without them: ceil(0.2 * 2) = 1. With them: (1+1+5+5)/4 = 3 per server, ceil(0.6 * 4) = 3.
			in: ScaleInput{Current: 4, Min: 1, Max: 10, Behavior: quickDown,
				Signals: []ScaleSignal{{Name: "waiting requests", Target: 5, Values: []float64{1, 1}, Missing: 2}}},
			desired: 3, reason: ScaleReasonDown, recorded: true},
		{name: "starting servers count as idle when going up (no double scale-up)",
			in: ScaleInput{Current: 4, Min: 1, Max: 10,
				Signals: []ScaleSignal{{Name: "waiting requests", Target: 5, Values: []float64{10, 10}, Unready: 2}}},
			desired: 4, reason: ScaleReasonSteady, recorded: true},
		{name: "the largest proposal of all metrics wins",
			in: ScaleInput{Current: 2, Min: 1, Max: 10, Signals: []ScaleSignal{
				{Name: "KV-cache utilization", Target: 0.8, Values: []float64{0.9, 0.9}}, // 3
				waiting(5, 10, 10), // 4
			}},
			desired: 4, reason: ScaleReasonUp, recorded: true},
		{name: "a metric without data never lets the total go down",
			in: ScaleInput{Current: 4, Min: 1, Max: 10, Behavior: quickDown, Signals: []ScaleSignal{
				{Name: "KV-cache utilization", Target: 0.8},
				waiting(5, 0, 0, 0, 0),
			}},
			desired: 4, reason: ScaleReasonSteady, recorded: true},
		{name: "no data at all: the total stays, nothing recorded",
			in:      ScaleInput{Current: 3, Min: 1, Max: 10, Signals: []ScaleSignal{{Name: "waiting requests", Target: 5}}},
			desired: 3, reason: ScaleReasonNoMetrics},
		{name: "no data below minReplicas: raised",
			in:      ScaleInput{Current: 0, Min: 1, Max: 10, Signals: []ScaleSignal{{Name: "waiting requests", Target: 5}}},
			desired: 1, reason: ScaleReasonTooFew},
		{name: "scale-down disabled",
			in: ScaleInput{Current: 4, Min: 1, Max: 10, Signals: []ScaleSignal{waiting(5, 0, 0, 0, 0)},
				Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: ptr.To[int32](0), SelectPolicy: ptr.To(autoscalingv2.DisabledPolicySelect)}}},
			desired: 4, reason: ScaleReasonScaleDisabled, recorded: true},
		{name: "a Pods policy steps down by its value",
			in: ScaleInput{Current: 8, Min: 1, Max: 10, Signals: []ScaleSignal{waiting(5, 0, 0, 0, 0, 0, 0, 0, 0)},
				Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: ptr.To[int32](0),
					Policies:                   []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 2, PeriodSeconds: 60}}}}},
			desired: 6, reason: ScaleReasonDownLimited, recorded: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Now = now
			d := Autoscale(tc.in)
			if d.Desired != tc.desired || d.Reason != tc.reason {
				t.Fatalf("got %d (%s: %s), want %d (%s)", d.Desired, d.Reason, d.Message, tc.desired, tc.reason)
			}
			if d.Message == "" {
				t.Error("no message")
			}
			recs := d.History.Recommendations
			last := len(recs) > 0 && recs[len(recs)-1].At.Equal(now) && recs[len(recs)-1].Replicas == d.Recommended
			if last != tc.recorded {
				t.Errorf("recommendation %d recorded: %v, want %v (history %+v)", d.Recommended, last, tc.recorded, recs)
			}
			evs := d.History.Events
			changed := len(evs) > 0 && evs[len(evs)-1].At.Equal(now)
			if changed != (d.Desired != tc.in.Current) {
				t.Errorf("scale event recorded: %v, change %d", changed, d.Desired-tc.in.Current)
			}
		})
	}
}

// TestAutoscaleIgnoresNoise feeds five minutes of a signal swinging 9 % either side of
// its target, read every 15 s: no decision may change the total.
func TestAutoscaleIgnoresNoise(t *testing.T) {
	start := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	var h ScaleHistory
	current := int32(4)
	for i := range 20 {
		v := 5 * 1.09
		if i%2 == 1 {
			v = 5 * 0.91
		}
		d := Autoscale(ScaleInput{Now: start.Add(time.Duration(i) * 15 * time.Second), Current: current, Min: 1, Max: 10,
			Signals: []ScaleSignal{waiting(5, v, v, v, v)}, History: h})
		if d.Desired != current {
			t.Fatalf("read %d (%.2f per server): total %d -> %d (%s: %s)", i, v, current, d.Desired, d.Reason, d.Message)
		}
		h = d.History
	}
}

// TestAutoscaleStepDownAfterWindow: load drops at t=0; the total falls only once the
// highest recommendation has left the 5-minute window.
func TestAutoscaleStepDownAfterWindow(t *testing.T) {
	start := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	h := ScaleHistory{Recommendations: []ScaleRecommendation{{At: start.Add(-time.Second), Replicas: 4}}}
	current := int32(4)
	var fell time.Duration
	for i := range 30 {
		at := time.Duration(i) * 15 * time.Second
		d := Autoscale(ScaleInput{Now: start.Add(at), Current: current, Min: 1, Max: 10,
			Signals: []ScaleSignal{waiting(5, 2.5, 2.5, 2.5, 2.5)}, History: h})
		h = d.History
		if d.Desired < current && fell == 0 {
			fell = at
		}
		current = d.Desired
	}
	if fell < 5*time.Minute-time.Second || fell > 5*time.Minute+15*time.Second {
		t.Fatalf("scaled down %v after the load fell, want just after the 5-minute window", fell)
	}
	if current != 2 {
		t.Fatalf("settled at %d, want 2 (half the load per server)", current)
	}
}
