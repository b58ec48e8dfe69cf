package localfleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// StateFile is the name of the file in Dir that describes a running fleet.
const StateFile = "fleet.json"

// State is the content of <Dir>/fleet.json: enough for another process to use or stop the fleet.
type State struct {
	Dir      string         `json:"dir"`
	Detached bool           `json:"detached"`
	OwnerPID int            `json:"ownerPID"` // the process that started the fleet
	Hub      ClusterState   `json:"hub"`
	Members  []ClusterState `json:"members"`
}

// ClusterState describes one cluster in fleet.json.
type ClusterState struct {
	Name       string            `json:"name"`
	Region     string            `json:"region,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Kubeconfig string            `json:"kubeconfig"`
	Server     string            `json:"server"`
	Processes  []ProcessState    `json:"processes"` // running ones only
}

// ProcessState is one running process.
type ProcessState struct {
	Component string `json:"component"`
	PID       int    `json:"pid"`
	Binary    string `json:"binary"`
	Log       string `json:"log"`
}

// ReadState reads <dir>/fleet.json.
func ReadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse %s: %w", filepath.Join(dir, StateFile), err)
	}
	return &s, nil
}

// Running returns the recorded processes that are still alive.
func (s *State) Running() []ProcessState {
	var live []ProcessState
	for _, c := range append([]ClusterState{s.Hub}, s.Members...) {
		for _, p := range c.Processes {
			if pidRunning(p.PID, p.Binary) {
				live = append(live, p)
			}
		}
	}
	return live
}

// writeState rewrites fleet.json from the processes running now. It is called whenever a
// process starts or stops, so a crash of the owner still leaves the PIDs on disk.
func (f *Fleet) writeState() error {
	f.stateMu.Lock()
	defer f.stateMu.Unlock()
	s := State{Dir: f.Dir, Detached: f.detach, OwnerPID: os.Getpid()}
	for _, c := range f.Clusters() {
		if c == nil {
			continue
		}
		cs := ClusterState{Name: c.Name, Region: c.Region, Labels: c.Labels, Kubeconfig: c.KubeconfigPath, Server: c.Server}
		for _, p := range c.running() {
			cs.Processes = append(cs.Processes, ProcessState{Component: p.component, PID: p.pid(), Binary: p.binary, Log: p.logPath})
		}
		if c.hub {
			s.Hub = cs
		} else {
			s.Members = append(s.Members, cs)
		}
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(f.Dir, StateFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", StateFile, err)
	}
	return nil
}

// StopFromState stops the fleet described by <dir>/fleet.json, typically one started by
// `fleetctl up --detach` in another process: SIGTERM, SIGKILL after a few seconds, then waits.
// A PID that no longer runs the recorded binary is left alone. Nothing but processes is removed.
func StopFromState(dir string) error {
	s, err := ReadState(dir)
	if err != nil {
		return fmt.Errorf("stop local fleet: %w", err)
	}
	type target struct {
		cluster string
		p       ProcessState
	}
	var targets []target
	for _, c := range append([]ClusterState{s.Hub}, s.Members...) {
		for _, p := range c.Processes {
			targets = append(targets, target{c.Name, p})
		}
	}
	sort.SliceStable(targets, func(i, j int) bool { return stopStage(targets[i].p.Component) < stopStage(targets[j].p.Component) })

	var errs []error
	for stage := 0; stage <= 2; stage++ {
		var live []target
		for _, t := range targets {
			if stopStage(t.p.Component) == stage && pidRunning(t.p.PID, t.p.Binary) {
				if err := signalPID(t.p.PID, syscall.SIGTERM); err == nil {
					live = append(live, t)
				}
			}
		}
		live = waitGone(live, func(t target) bool { return pidRunning(t.p.PID, t.p.Binary) }, stopGrace)
		for _, t := range live {
			_ = signalPID(t.p.PID, syscall.SIGKILL)
		}
		for _, t := range waitGone(live, func(t target) bool { return pidRunning(t.p.PID, t.p.Binary) }, 10*time.Second) {
			errs = append(errs, fmt.Errorf("stop %s %s: pid %d did not exit", t.cluster, t.p.Component, t.p.PID))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Keep names and kubeconfig paths, drop the PIDs.
	s.Hub.Processes = nil
	for i := range s.Members {
		s.Members[i].Processes = nil
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, StateFile), append(b, '\n'), 0o644)
}

// waitGone polls until alive is false for every item or timeout passes; it returns the survivors.
func waitGone[T any](items []T, alive func(T) bool, timeout time.Duration) []T {
	deadline := time.Now().Add(timeout)
	for {
		var left []T
		for _, it := range items {
			if alive(it) {
				left = append(left, it)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		items = left
		time.Sleep(50 * time.Millisecond)
	}
}
