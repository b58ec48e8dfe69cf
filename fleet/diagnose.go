package fleet

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Kubeconfig returns the kubeconfig a cluster's registration Secret holds (nil when it
// holds none: a discovery source reaches the cluster otherwise).
func (r *Registry) Kubeconfig(ctx context.Context, name string) ([]byte, error) {
	s := &corev1.Secret{}
	if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: name}, s); err != nil {
		return nil, err
	}
	if !IsRegistration(s.Labels) {
		return nil, nil
	}
	return s.Data[KubeconfigKey], nil
}

// KubeconfigGetter returns a cluster's registered kubeconfig.
type KubeconfigGetter interface {
	Kubeconfig(ctx context.Context, name string) ([]byte, error)
}

// SelfContained refuses a member's REST config that would make the hub run a command or
// read a file of its own. A registration's kubeconfig is data from whoever wrote the
// Secret: an exec plugin or auth provider would run their code in the hub, and a file path
// (tokenFile, certificate or key files) would send the hub's own files, its service
// account token among them, to a server of theirs. The hub's identity in a member travels
// in the kubeconfig itself: a token, or client certificate and key data.
func SelfContained(cfg *rest.Config) error {
	var refs []string
	if cfg.ExecProvider != nil {
		refs = append(refs, "an exec plugin ("+cfg.ExecProvider.Command+")")
	}
	if cfg.AuthProvider != nil {
		refs = append(refs, "an auth provider ("+cfg.AuthProvider.Name+")")
	}
	for _, f := range []struct{ field, path string }{
		{"tokenFile", cfg.BearerTokenFile}, {"certificate-authority", cfg.CAFile},
		{"client-certificate", cfg.CertFile}, {"client-key", cfg.KeyFile},
	} {
		if f.path != "" {
			refs = append(refs, f.field+" "+f.path)
		}
	}
	if len(refs) == 0 {
		return nil
	}
	return fmt.Errorf("kubeconfig refused: it uses %s; a member's kubeconfig must carry its credentials as data (token, client-certificate-data, client-key-data, certificate-authority-data), so the hub runs no command and reads no file of its own for it",
		strings.Join(refs, ", "))
}

// DiagnoseKubeconfig says what is wrong with a registration's kubeconfig, or "" when
// nothing is or it cannot tell (an API server that does not answer is unreachable, not
// misconfigured): it does not parse, has no usable context, its client certificate is
// expired or not valid yet, the API server's certificate is not signed by its CA, or the
// API server refuses its credentials (401) or its identity (403).
func DiagnoseKubeconfig(ctx context.Context, raw []byte, now time.Time, timeout time.Duration) string {
	cfg, err := clientcmd.RESTConfigFromKubeConfig(raw)
	if err != nil {
		return "invalid kubeconfig: " + err.Error()
	}
	if err := SelfContained(cfg); err != nil {
		return err.Error()
	}
	if why := certValidity(cfg, now); why != "" {
		return why
	}
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = timeout
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return "invalid kubeconfig: " + err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = dc.RESTClient().Get().AbsPath("/version").Do(ctx).Error()
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	switch {
	case err == nil:
		return ""
	case apierrors.IsUnauthorized(err):
		return "kubeconfig: the API server refuses its credentials (401 Unauthorized): the token or client certificate is not (or no longer) valid there"
	case apierrors.IsForbidden(err):
		return "kubeconfig: its identity may not read /version (403 Forbidden): bind it to config/rbac/member-role.yaml"
	case errors.As(err, &unknownCA):
		return "kubeconfig: the API server's certificate is not signed by the kubeconfig's certificate authority"
	case errors.As(err, &hostname):
		return "kubeconfig: the API server's certificate does not name the server address: " + hostname.Error()
	}
	return ""
}

// certValidity checks the client certificate's validity period.
func certValidity(cfg *rest.Config, now time.Time) string {
	data := cfg.CertData
	if len(data) == 0 && cfg.CertFile != "" {
		return "" // a file on the hub's disk: the hub cannot be expected to hold it
	}
	if len(data) == 0 {
		return ""
	}
	certs, err := certutil.ParseCertsPEM(data)
	if err != nil || len(certs) == 0 {
		block, _ := pem.Decode(data)
		if block == nil {
			return "invalid kubeconfig: client-certificate-data is not a PEM certificate"
		}
		return fmt.Sprintf("invalid kubeconfig: client-certificate-data: %v", err)
	}
	c := certs[0]
	switch {
	case now.After(c.NotAfter):
		return fmt.Sprintf("kubeconfig: client certificate of %q expired at %s", c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.NotBefore):
		return fmt.Sprintf("kubeconfig: client certificate of %q is not valid before %s", c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339))
	}
	return ""
}
