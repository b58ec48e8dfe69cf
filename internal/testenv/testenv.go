// Package testenv starts single real API servers (etcd and kube-apiserver through
// controller-runtime's envtest) for tests. It depends on no reconciler, so any package's
// tests can use it; e2e/framework re-exports it next to the multi-cluster local fleet.
package testenv

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/inferfleet/inferfleet/api/scheme"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/repo"
)

// Root is the module's root folder (repo.Root); a test cannot run without it.
func Root() string {
	root, err := repo.Root()
	if err != nil {
		panic(err)
	}
	return root
}

// BinDir is where the control-plane binaries live (repo.BinDir).
func BinDir() string {
	dir, err := repo.BinDir()
	if err != nil {
		panic(err)
	}
	return dir
}

// CRDs are the folders of every CRD the hub and members use (repo.CRDDirs).
func CRDs() []string { return repo.CRDDirs(Root()) }

// Scheme knows the built-in types, ours and the Inference Extension's.
func Scheme() *runtime.Scheme { return scheme.New() }

// Env is one running envtest control plane.
type Env struct {
	Config *rest.Config
	Client client.Client
	env    *envtest.Environment
}

// StopAPIServer stops the API server (etcd keeps running), as a region loss would.
func (e *Env) StopAPIServer() error { return e.env.ControlPlane.APIServer.Stop() }

// Start runs etcd and kube-apiserver from BinDir with the given CRD folders installed and
// stops them when the test ends. Missing binaries fail the test: run `make bins`.
func Start(t testing.TB, crdDirs []string) *Env { return StartWith(t, Options{CRDDirs: crdDirs}) }

// Options configure StartWith.
type Options struct {
	CRDDirs []string
	// AdminToken, when set, is also accepted as a bearer token of a system:masters user,
	// for clients that authenticate as cloud providers do (OAuth access tokens).
	AdminToken string
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Env {
	t.Helper()
	crdDirs := o.CRDDirs
	bin := BinDir()
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Fatalf("%s not found in %s: run `make bins` first", b, bin)
		}
	}
	var dirs []string
	for _, d := range crdDirs {
		if _, err := os.Stat(d); err == nil {
			dirs = append(dirs, d)
		}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: bin,
		CRDDirectoryPaths:     dirs,
		ErrorIfCRDPathMissing: true,
		Scheme:                Scheme(),
	}
	if o.AdminToken != "" {
		tokens := filepath.Join(t.TempDir(), "tokens.csv")
		if err := os.WriteFile(tokens, []byte(o.AdminToken+`,token-admin,token-admin,"system:masters"`+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env.ControlPlane.GetAPIServer().Configure().Set("token-auth-file", tokens)
	}
	cfg, err := env.Start()
	if err != nil {
		// A half-started control plane still has processes to stop.
		_ = env.Stop()
		t.Fatalf("start envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Logf("stop envtest: %v", err)
		}
	})
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &Env{Config: cfg, Client: c, env: env}
}

// Kubeconfig serialises a rest.Config (as envtest returns it) into a kubeconfig file.
func Kubeconfig(cfg *rest.Config, name string) ([]byte, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	kc.CurrentContext = name
	return clientcmd.Write(*kc)
}

// KubeconfigFile writes cfg's kubeconfig (Kubeconfig, context name) into a file of the
// test's temporary folder and returns its path.
func KubeconfigFile(t testing.TB, cfg *rest.Config, name string) string {
	t.Helper()
	kc, err := Kubeconfig(cfg, name)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// RegisterMember stores a member's kubeconfig in the hub the way the hub discovers it.
func RegisterMember(ctx context.Context, hub client.Client, name, region string, labels map[string]string, kubeconfig []byte) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fleet.RegistrationNamespace}}
	if err := hub.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return hub.Create(ctx, fleet.RegistrationSecret(name, fleet.RegistrationNamespace, region, kubeconfig, labels))
}
