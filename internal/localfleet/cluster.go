package localfleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Cluster is one running cluster of a local fleet.
type Cluster struct {
	Name   string
	Region string
	Labels map[string]string
	Nodes  []NodeSpec
	// KubeconfigPath is <Dir>/<Name>.kubeconfig: admin (system:masters), client-certificate auth.
	KubeconfigPath string
	// Server is the kube-apiserver URL, https://127.0.0.1:<port>; it never changes on restart.
	Server string

	hub          bool
	attached     bool // runs elsewhere (kind): only kwok is ours
	fleet        *Fleet
	dir          string
	bins         map[string]string
	etcdPort     int
	etcdPeerPort int
	apiPort      int
	logf         func(string, ...any)
	pki          *pki
	kubeconfig   []byte
	restConfig   *rest.Config
	kwokStarted  time.Time
	// modelServerIP is Options.ModelServerIP.
	modelServerIP string
	// componentArgs are the member components' command lines, to restart them.
	componentArgs map[string][]string

	opMu   sync.Mutex // serialises starting and stopping processes
	procMu sync.Mutex // guards procs
	procs  []*process // in start order; a restarted kube-apiserver is appended
}

// memberControllers are the kube-controller-manager controllers a member runs: enough for
// Deployments to roll out, nodes to be watched, namespaces to get their default ServiceAccount,
// NoExecute taints to evict and a member's own HorizontalPodAutoscalers to scale (within
// their bounds: a member has no metrics API). No token controller: pods run without tokens.
var memberControllers = []string{
	"deployment", "replicaset", "statefulset", "nodelifecycle", "garbagecollector", "namespace", "podgc",
	"serviceaccount", "taint-eviction-controller", "horizontalpodautoscaling",
}

// RESTConfig returns an admin config for the cluster. It stays valid across StopAPIServer /
// StartAPIServer: the port and the certificates outlive the process.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.restConfig) }

// Kubeconfig returns the admin kubeconfig, with certificates inline.
func (c *Cluster) Kubeconfig() []byte { return append([]byte(nil), c.kubeconfig...) }

// IsHub reports whether this is the fleet's hub.
func (c *Cluster) IsHub() bool { return c.hub }

// LogPath is where component's output goes: <Dir>/logs/<cluster>-<component>.log.
func (c *Cluster) LogPath(component string) string {
	return filepath.Join(c.fleet.Dir, "logs", c.Name+"-"+component+".log")
}

// APIServerRunning reports whether the cluster's kube-apiserver process is alive.
func (c *Cluster) APIServerRunning() bool {
	p := c.proc(KubeAPIServer)
	return p != nil && !p.exited()
}

// StopAPIServer sends sig (syscall.SIGKILL for a crash, SIGTERM for a graceful stop) to the
// kube-apiserver and waits until it has exited. etcd and the other components keep running.
func (c *Cluster) StopAPIServer(sig os.Signal) error {
	if c.attached {
		return fmt.Errorf("%s is attached: its API server is not a process of this fleet", c.Name)
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	p := c.proc(KubeAPIServer)
	if p == nil || p.exited() {
		return nil
	}
	if err := p.signal(sig, 30*time.Second); err != nil {
		return fmt.Errorf("stop %s kube-apiserver: %w", c.Name, err)
	}
	c.logf("%s: kube-apiserver stopped (%v)", c.Name, sig)
	return c.fleet.writeState()
}

// HangAPIServer stops the kube-apiserver in its tracks (SIGSTOP): connections open and
// nothing answers, as a partitioned or wedged region does. ResumeAPIServer lets it go on.
func (c *Cluster) HangAPIServer() error { return c.signalAPIServer(syscall.SIGSTOP) }

// ResumeAPIServer resumes a hung kube-apiserver (SIGCONT).
func (c *Cluster) ResumeAPIServer() error { return c.signalAPIServer(syscall.SIGCONT) }

func (c *Cluster) signalAPIServer(sig syscall.Signal) error {
	if c.attached {
		return fmt.Errorf("%s is attached: its API server is not a process of this fleet", c.Name)
	}
	p := c.proc(KubeAPIServer)
	if p == nil || p.exited() {
		return fmt.Errorf("%s: kube-apiserver is not running", c.Name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s kube-apiserver: %v: %w", c.Name, sig, err)
	}
	c.logf("%s: kube-apiserver sent %v", c.Name, sig)
	return nil
}

// StartAPIServer starts the kube-apiserver again on the same port, against the same etcd and
// with the same certificates, and waits until it is ready.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	if c.attached {
		return fmt.Errorf("%s is attached: its API server is not a process of this fleet", c.Name)
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if p := c.proc(KubeAPIServer); p != nil && !p.exited() {
		return fmt.Errorf("start %s kube-apiserver: already running (pid %d)", c.Name, p.pid())
	}
	began := time.Now()
	if err := c.startAPIServer(ctx); err != nil {
		return fmt.Errorf("start %s kube-apiserver: %w", c.Name, err)
	}
	c.logf("%s: kube-apiserver restarted, ready in %s", c.Name, time.Since(began).Round(10*time.Millisecond))
	if err := c.restartControllers(); err != nil {
		return err
	}
	return c.fleet.writeState()
}

// proc returns the latest process of component.
func (c *Cluster) proc(component string) *process {
	c.procMu.Lock()
	defer c.procMu.Unlock()
	for i := len(c.procs) - 1; i >= 0; i-- {
		if c.procs[i].component == component {
			return c.procs[i]
		}
	}
	return nil
}

// start brings the cluster up: certificates, etcd, kube-apiserver, the member components, CRDs
// and nodes. Any process it started is stopped by Fleet.Stop on failure.
func (c *Cluster) start(ctx context.Context, crds []*apiextensionsv1.CustomResourceDefinition) error {
	began := time.Now()
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	if c.attached {
		if err := c.attach(); err != nil {
			return err
		}
	} else if err := c.startControlPlane(ctx, began); err != nil {
		return err
	}

	if !c.hub {
		if err := c.startMemberComponents(ctx); err != nil {
			return err
		}
	}

	// CRDs and nodes are independent: do both at once.
	var wg sync.WaitGroup
	var crdErr, nodeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		if crdErr = installCRDs(ctx, c.restConfig, crds); crdErr != nil {
			crdErr = fmt.Errorf("%s: %w", c.Name, crdErr)
		}
	}()
	if !c.hub {
		nodeErr = c.setUpMember(ctx)
	}
	wg.Wait()
	if err := errors.Join(crdErr, nodeErr); err != nil {
		return c.withExits(err)
	}
	if err := c.checkAlive(); err != nil {
		return err
	}
	c.logf("%s: ready (%d CRDs, %d nodes) in %s", c.Name, len(crds), len(c.Nodes), time.Since(began).Round(10*time.Millisecond))
	return nil
}

// attach takes an existing cluster's kubeconfig as its own.
func (c *Cluster) attach() error {
	cfg, err := clientcmd.RESTConfigFromKubeConfig(c.kubeconfig)
	if err != nil {
		return fmt.Errorf("%s kubeconfig: %w", c.Name, err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	c.restConfig, c.Server = cfg, cfg.Host
	if err := writeFileAtomic(c.KubeconfigPath, c.kubeconfig, 0o600); err != nil {
		return fmt.Errorf("write %s kubeconfig: %w", c.Name, err)
	}
	c.logf("%s: attached to %s", c.Name, c.Server)
	return nil
}

// startControlPlane starts etcd and kube-apiserver with the cluster's certificates.
func (c *Cluster) startControlPlane(ctx context.Context, began time.Time) error {
	p, err := loadOrCreatePKI(filepath.Join(c.dir, "pki"))
	if err != nil {
		return fmt.Errorf("%s certificates: %w", c.Name, err)
	}
	c.pki = p
	c.restConfig = &rest.Config{
		Host: c.Server,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: p.caCert, CertData: p.adminCert, KeyData: p.adminKey,
		},
		QPS: 100, Burst: 200,
	}
	if c.kubeconfig, err = kubeconfigFor(c.Name, c.Server, p); err != nil {
		return err
	}
	if err := writeFileAtomic(c.KubeconfigPath, c.kubeconfig, 0o600); err != nil {
		return fmt.Errorf("write %s kubeconfig: %w", c.Name, err)
	}

	c.opMu.Lock()
	_, err = c.launch(Etcd, c.etcdArgs())
	if err != nil {
		c.opMu.Unlock()
		return fmt.Errorf("start %s etcd: %w", c.Name, err)
	}
	err = c.startAPIServer(ctx)
	c.opMu.Unlock()
	if err != nil {
		return fmt.Errorf("start %s kube-apiserver: %w", c.Name, err)
	}
	c.logf("%s: kube-apiserver ready at %s (%s)", c.Name, c.Server, time.Since(began).Round(10*time.Millisecond))
	return nil
}

func (c *Cluster) etcdArgs() []string {
	return []string{
		"--name=" + c.Name,
		"--data-dir=" + filepath.Join(c.dir, "etcd"),
		"--listen-client-urls=" + localURL("http", c.etcdPort),
		"--advertise-client-urls=" + localURL("http", c.etcdPort),
		"--listen-peer-urls=" + localURL("http", c.etcdPeerPort),
		"--initial-advertise-peer-urls=" + localURL("http", c.etcdPeerPort),
		"--initial-cluster=" + c.Name + "=" + localURL("http", c.etcdPeerPort),
		"--unsafe-no-fsync=true", // throwaway data: speed over durability
		"--log-level=warn",
	}
}

// RestartEtcd kills the cluster's etcd (SIGKILL) and starts it again on the same data and
// ports, as a crashed etcd comes back; the API server keeps running, loses its watches to
// etcd and re-establishes them. It waits until the API server is ready again.
func (c *Cluster) RestartEtcd(ctx context.Context) error {
	if c.attached {
		return fmt.Errorf("%s is attached: its etcd is not a process of this fleet", c.Name)
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if p := c.proc(Etcd); p != nil && !p.exited() {
		if err := p.signal(syscall.SIGKILL, 30*time.Second); err != nil {
			return fmt.Errorf("stop %s etcd: %w", c.Name, err)
		}
	}
	if _, err := c.launch(Etcd, c.etcdArgs()); err != nil {
		return fmt.Errorf("start %s etcd: %w", c.Name, err)
	}
	cs, err := kubernetes.NewForConfig(c.restConfig)
	if err != nil {
		return err
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		return cs.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error() == nil, nil
	})
	if err != nil {
		return fmt.Errorf("%s: the API server is not ready after the etcd restart: %w", c.Name, err)
	}
	c.logf("%s: etcd restarted", c.Name)
	return c.fleet.writeState()
}

func (c *Cluster) startMemberComponents(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(c.restConfig)
	if err != nil {
		return err
	}
	if err := clearNodeLeases(ctx, cs, c.Nodes); err != nil {
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	c.kwokStarted = time.Now()
	stages, err := kwokStages(c.modelServerIP)
	if err != nil {
		return err
	}
	stagesPath := filepath.Join(c.dir, "kwok-stages.yaml")
	if err := writeFileAtomic(stagesPath, stages, 0o644); err != nil {
		return err
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	components := []struct {
		component string
		args      []string
	}{
		{KubeControllerManager, []string{
			"--kubeconfig=" + c.KubeconfigPath,
			"--leader-elect=false",
			"--secure-port=0",
			"--use-service-account-credentials=false",
			"--controllers=" + strings.Join(memberControllers, ","),
			// Short enough that a lost node shows up in drills within seconds, long enough that
			// kwok's lease heartbeats keep nodes Ready on a loaded 2-core machine.
			"--node-monitor-grace-period=20s",
			"--kube-api-qps=100", "--kube-api-burst=200",
		}},
		{KubeScheduler, []string{
			"--kubeconfig=" + c.KubeconfigPath,
			"--leader-elect=false",
			"--secure-port=0",
		}},
		{Kwok, []string{
			"--kubeconfig=" + c.KubeconfigPath,
			"--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector=" + KwokNodeAnnotation + "=fake",
			"--server-address=127.0.0.1:0",
			"--config=" + stagesPath,
			"--node-lease-duration-seconds=20", // renewed every 5s, well inside the grace period
			"--cidr=10.244.0.0/16",             // pod IPs; the default overlaps the service range
		}},
	}
	if c.attached { // the cluster has its own controller manager and scheduler
		components = components[2:]
	}
	for _, s := range components {
		if _, err := c.launch(s.component, s.args); err != nil {
			return fmt.Errorf("start %s %s: %w", c.Name, s.component, err)
		}
		if c.componentArgs == nil {
			c.componentArgs = map[string][]string{}
		}
		c.componentArgs[s.component] = s.args
	}
	return nil
}

// restartControllers restarts kube-controller-manager and kube-scheduler. After their API
// server came back, their informers can stay behind what they wrote before (Kubernetes
// 1.36's replicaset controller then refuses to sync: "read version ... is not as new as
// written version"); in a real region the whole control plane comes back together.
func (c *Cluster) restartControllers() error {
	for _, component := range []string{KubeControllerManager, KubeScheduler} {
		args, ok := c.componentArgs[component]
		if !ok {
			continue
		}
		if p := c.proc(component); p != nil && !p.exited() {
			if err := p.signal(syscall.SIGTERM, 10*time.Second); err != nil {
				return fmt.Errorf("stop %s %s: %w", c.Name, component, err)
			}
		}
		if _, err := c.launch(component, args); err != nil {
			return fmt.Errorf("restart %s %s: %w", c.Name, component, err)
		}
	}
	return nil
}

// setUpMember prepares what workloads in a member need: the default namespace's
// ServiceAccount (no token controller runs) and Ready fake nodes.
func (c *Cluster) setUpMember(ctx context.Context) error {
	if err := EnsureNamespace(ctx, c.restConfig, "default"); err != nil {
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	cs, err := kubernetes.NewForConfig(c.restConfig)
	if err != nil {
		return err
	}
	if err := ensureNodes(ctx, cs, c.Nodes); err != nil {
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	if err := waitNodesReady(ctx, cs, c.Nodes, c.kwokStarted, c.checkAlive); err != nil {
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	return nil
}

// startAPIServer launches kube-apiserver and waits for /readyz; c.opMu must be held.
func (c *Cluster) startAPIServer(ctx context.Context) error {
	p := c.pki
	args := []string{
		"--etcd-servers=" + localURL("http", c.etcdPort),
		"--secure-port=" + strconv.Itoa(c.apiPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--cert-dir=" + p.dir,
		"--tls-cert-file=" + p.servingCertFile,
		"--tls-private-key-file=" + p.servingKeyFile,
		"--client-ca-file=" + p.caCertFile,
		"--service-account-key-file=" + p.saPubFile,
		"--service-account-signing-key-file=" + p.saKeyFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.0.0.0/16", // room for a Service per endpoint picker of hundreds of services
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		// No token controller runs, so pods must not wait for a token; GPU/TPU pods get the
		// tolerations GKE adds for extended-resource taints.
		"--disable-admission-plugins=ServiceAccount",
		"--enable-admission-plugins=ExtendedResourceToleration",
		// Endpoints may not hold loopback addresses; the "kubernetes" Service needs none here.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		// On SIGTERM, end open watches within a second; otherwise shutdown waits out the 60s
		// request timeout while controllers keep their watches open.
		"--shutdown-watch-termination-grace-period=1s",
	}
	proc, err := c.launch(KubeAPIServer, args)
	if err != nil {
		return err
	}
	return c.waitReady(ctx, proc)
}

// waitReady polls /readyz until it answers ok, failing early if the apiserver or etcd exits.
func (c *Cluster) waitReady(ctx context.Context, apiserver *process) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.pki.caCert)
	cert, err := tls.X509KeyPair(c.pki.adminCert, c.pki.adminKey)
	if err != nil {
		return err
	}
	client := &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
			DisableKeepAlives: true,
		},
	}
	etcd := c.proc(Etcd)
	var last string
	for {
		if apiserver.exited() {
			return apiserver.exitError()
		}
		if etcd != nil && etcd.exited() {
			return etcd.exitError()
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Server+"/readyz", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready (%s): %w; last lines of %s:\n%s", last, ctx.Err(), apiserver.logPath, logTail(apiserver.logPath, 25))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// launch starts component and records it in fleet.json; c.opMu must be held.
func (c *Cluster) launch(component string, args []string) (*process, error) {
	p, err := startProcess(component, c.bins[component], args, c.LogPath(component), c.fleet.detach)
	if err != nil {
		return nil, err
	}
	c.procMu.Lock()
	c.procs = append(c.procs, p)
	c.procMu.Unlock()
	return p, c.fleet.writeState()
}

// checkAlive returns an error, with the log tail, if any component has exited.
func (c *Cluster) checkAlive() error {
	c.procMu.Lock()
	defer c.procMu.Unlock()
	seen := map[string]bool{}
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		if seen[p.component] {
			continue
		}
		seen[p.component] = true
		if p.exited() {
			return fmt.Errorf("%s: %w", c.Name, p.exitError())
		}
	}
	return nil
}

// withExits prefers a crashed component's log over a symptom such as a timeout.
func (c *Cluster) withExits(err error) error {
	if dead := c.checkAlive(); dead != nil {
		return errors.Join(err, dead)
	}
	return err
}

// running returns the live processes.
func (c *Cluster) running() []*process {
	c.procMu.Lock()
	defer c.procMu.Unlock()
	var ps []*process
	for _, p := range c.procs {
		if !p.exited() {
			ps = append(ps, p)
		}
	}
	return ps
}

// stop terminates the cluster's processes in stopStage order.
func (c *Cluster) stop() error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	var errs []error
	for stage := 0; stage <= 2; stage++ {
		var wg sync.WaitGroup
		var emu sync.Mutex
		for _, p := range c.running() {
			if stopStage(p.component) != stage {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := p.signal(syscall.SIGTERM, stopGrace); err != nil {
					emu.Lock()
					errs = append(errs, fmt.Errorf("stop %s %s: %w", c.Name, p.component, err))
					emu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	return errors.Join(errs...)
}

func kubeconfigFor(name, server string, p *pki) ([]byte, error) {
	return kubeconfigWith(name, server, p.caCert, name+"-admin", p.adminCert, p.adminKey)
}

func kubeconfigWith(name, server string, caCert []byte, user string, cert, key []byte) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	// Names are per cluster so several kubeconfigs merge cleanly in KUBECONFIG=a:b:c.
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caCert}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: user}
	cfg.CurrentContext = name
	return clientcmd.Write(*cfg)
}

func localURL(scheme string, port int) string {
	return scheme + "://127.0.0.1:" + strconv.Itoa(port)
}

// writeFileAtomic writes through a temporary file so readers never see half a file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
