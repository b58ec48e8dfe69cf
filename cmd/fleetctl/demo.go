package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/internal/localfleet"
	"github.com/inferfleet/inferfleet/internal/repo"
)

type demoOptions struct {
	dir, sample string
	wait        time.Duration
	keepRunning bool
}

func newDemoCmd() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Local fleet up, hub running, the two-region sample applied and its status shown",
		Long: `demo starts the local fleet (a hub and the members gke-west in europe-west3 and
gke-east in us-east4, with fake H100 and TPU nodes), runs the hub manager against it,
applies a sample FleetInferenceService and prints its status as it converges. It keeps
running until Ctrl-C unless --keep-running=false.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o, cmd)
		},
	}
	cmd.Flags().StringVar(&o.dir, "dir", ".fleet", "state directory of the local fleet")
	cmd.Flags().StringVar(&o.sample, "sample", "config/samples/fleet_v1alpha1_two-region-h100.yaml", "FleetInferenceService to apply (relative to the repository root)")
	cmd.Flags().DurationVar(&o.wait, "wait", 90*time.Second, "how long to wait for the service to become Ready")
	cmd.Flags().BoolVar(&o.keepRunning, "keep-running", true, "keep the fleet and hub running until Ctrl-C")
	return cmd
}

func runDemo(ctx context.Context, out, errOut io.Writer, o demoOptions, cmd *cobra.Command) error {
	root, err := repo.Root()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	dirs := repo.CRDDirs(root)
	f, err := localfleet.Start(ctx, localfleet.Options{Dir: o.dir, Members: localMembers(2), HubCRDDirs: dirs, MemberCRDDirs: dirs, Log: errOut})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(errOut, "stopping the local fleet...")
		_ = f.Stop()
	}()
	printUsage(cmd, f, false)

	hub, err := startHubProcess(ctx, f, errOut)
	if err != nil {
		return err
	}
	defer hub.stop()
	fmt.Fprintf(out, "\nHub manager running (pid %d), logs in %s\n", hub.cmd.Process.Pid, hub.log)

	c, err := client.New(f.Hub.RESTConfig(), client.Options{Scheme: app.Scheme()})
	if err != nil {
		return err
	}
	sample := o.sample
	if !filepath.IsAbs(sample) {
		sample = filepath.Join(root, sample)
	}
	svc, err := applySample(ctx, c, sample)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Applied FleetInferenceService %s/%s from %s\n\n", svc.Namespace, svc.Name, o.sample)

	ready := waitAndShow(ctx, out, c, client.ObjectKeyFromObject(svc), o.wait)
	if !ready && ctx.Err() == nil {
		fmt.Fprintf(out, "\nnot Ready within %s; see %s\n", o.wait, hub.log)
	}
	if o.keepRunning && ctx.Err() == nil {
		fmt.Fprintf(out, "\nTry: KUBECONFIG=%s kubectl get fis -A\nPress Ctrl-C to stop.\n", f.Hub.KubeconfigPath)
		<-ctx.Done()
	}
	if !ready && !o.keepRunning {
		return errors.New("the sample did not become Ready")
	}
	return nil
}

// hubProcess is the hub manager binary running against the local fleet's hub.
type hubProcess struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func (h *hubProcess) stop() {
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
	}
}

// hubBinary finds the hub next to fleetctl, then in the binaries folder.
func hubBinary() (string, error) {
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "hub"))
	}
	if d := os.Getenv("INFERFLEET_BIN_DIR"); d != "" {
		candidates = append(candidates, filepath.Join(d, "hub"))
	}
	if root, err := repo.Root(); err == nil {
		candidates = append(candidates, filepath.Join(root, "bin", "hub"))
	}
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
	}
	return "", fmt.Errorf("hub binary not found in %s: run `make build`", strings.Join(candidates, ", "))
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func startHubProcess(ctx context.Context, f *localfleet.Fleet, errOut io.Writer) (*hubProcess, error) {
	bin, err := hubBinary()
	if err != nil {
		return nil, err
	}
	metrics, err := freeAddr()
	if err != nil {
		return nil, err
	}
	probes, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(f.Dir, "logs", "hub-manager.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--metrics-bind-address", metrics, "--health-probe-bind-address", probes)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+f.Hub.KubeconfigPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := localfleet.StartChild(cmd); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start hub: %w", err)
	}
	h := &hubProcess{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logFile.Close(); close(h.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + probes + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return h, nil
			}
		}
		select {
		case <-h.done:
			return nil, fmt.Errorf("hub exited at start; see %s", logPath)
		case <-ctx.Done():
			h.stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			h.stop()
			return nil, fmt.Errorf("hub not ready within 30s; see %s", logPath)
		}
	}
}

// applySample creates the sample and a demo token Secret when it names one.
func applySample(ctx context.Context, c client.Client, path string) (*v1alpha1.FleetInferenceService, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	svc := &v1alpha1.FleetInferenceService{}
	if err := yaml.UnmarshalStrict(raw, svc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if svc.Namespace == "" {
		svc.Namespace = "default"
	}
	if ref := svc.Spec.Model.Server.HuggingFaceTokenSecretRef; ref != nil {
		key := ref.Key
		if key == "" {
			key = v1alpha1.DefaultTokenKey
		}
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: ref.Name, Namespace: svc.Namespace, Labels: map[string]string{v1alpha1.LabelCopyToMembers: "true"}},
			StringData: map[string]string{key: "hf_demo_token_not_real"}}
		if err := c.Create(ctx, s); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create demo token Secret: %w", err)
		}
	}
	if err := c.Create(ctx, svc); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("apply %s: %w", path, err)
	}
	return svc, nil
}

// waitAndShow prints the service's status whenever it changes, until it is Ready.
func waitAndShow(ctx context.Context, out io.Writer, c client.Client, key client.ObjectKey, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	last := ""
	for time.Now().Before(deadline) && ctx.Err() == nil {
		svc := &v1alpha1.FleetInferenceService{}
		if err := c.Get(ctx, key, svc); err == nil {
			var b strings.Builder
			printStatus(&b, svc)
			if s := b.String(); s != last {
				fmt.Fprintf(out, "[%s]\n%s\n", time.Now().Format("15:04:05"), s)
				last = s
			}
			if cond := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionReady); cond != nil && cond.Status == metav1.ConditionTrue && svc.Status.ObservedGeneration == svc.Generation {
				return true
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return false
}

// printStatus prints a service as `fleetctl status` does.
func printStatus(w io.Writer, svc *v1alpha1.FleetInferenceService) {
	writeStatusTable(w, []v1alpha1.FleetInferenceService{*svc}, time.Now(), false)
}
