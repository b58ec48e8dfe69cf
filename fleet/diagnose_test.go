package fleet_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// selfSigned is a PEM certificate and key valid from notBefore to notAfter.
func selfSigned(t *testing.T, cn string, notBefore, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// TestDiagnoseKubeconfig: against a real API server, each broken registration kubeconfig
// is named for what is wrong with it, and a working one for nothing.
func TestDiagnoseKubeconfig(t *testing.T) {
	env := testenv.Start(t, nil)
	ctx := context.Background()
	now := time.Now()
	kubeconfig := func(mutate func(*rest.Config)) []byte {
		cfg := rest.CopyConfig(env.Config)
		mutate(cfg)
		raw, err := testenv.Kubeconfig(cfg, "member")
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	expiredCert, expiredKey := selfSigned(t, "hub", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	futureCert, futureKey := selfSigned(t, "hub", now.Add(24*time.Hour), now.Add(48*time.Hour))
	otherCA, _ := selfSigned(t, "other-ca", now.Add(-time.Hour), now.Add(time.Hour))
	cases := []struct {
		name, want string
		raw        []byte
	}{
		{"working", "", kubeconfig(func(*rest.Config) {})},
		{"not a kubeconfig", "invalid kubeconfig", []byte("apiVersion: v1\nkind: Config\nclusters: {not: a list}\n")},
		{"no current context", "invalid kubeconfig", []byte("apiVersion: v1\nkind: Config\n")},
		{"expired client certificate", `client certificate of "hub" expired at ` + now.Add(-24 * time.Hour).UTC().Format(time.RFC3339)[:10],
			kubeconfig(func(c *rest.Config) { c.CertData, c.KeyData = expiredCert, expiredKey })},
		{"client certificate not valid yet", `client certificate of "hub" is not valid before`,
			kubeconfig(func(c *rest.Config) { c.CertData, c.KeyData = futureCert, futureKey })},
		{"unknown token", "refuses its credentials (401 Unauthorized)",
			kubeconfig(func(c *rest.Config) { c.CertData, c.KeyData, c.BearerToken = nil, nil, "not-a-token" })},
		{"another certificate authority", "not signed by the kubeconfig's certificate authority",
			kubeconfig(func(c *rest.Config) { c.CAData = otherCA })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := fleet.DiagnoseKubeconfig(ctx, tc.raw, now, 5*time.Second)
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("diagnosis %q, want %q", got, tc.want)
			}
		})
	}
	// An API server that does not answer is unreachable, not misconfigured.
	if got := fleet.DiagnoseKubeconfig(ctx, kubeconfig(func(c *rest.Config) { c.Host = "https://127.0.0.1:1" }), now, 2*time.Second); got != "" {
		t.Errorf("a closed port diagnosed as %q", got)
	}
}
