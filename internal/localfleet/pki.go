package localfleet

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the set of files one cluster's kube-apiserver and its clients use. It is written once
// per cluster into Dir and reused on every start, so a restarted kube-apiserver serves with the
// same CA and old clients keep working.
type pki struct {
	dir string

	caCert, caKey        []byte // PEM
	adminCert, adminKey  []byte // PEM, CN=admin O=system:masters
	servingCertFile      string
	servingKeyFile       string
	caCertFile           string
	saKeyFile, saPubFile string
}

const certValidity = 10 * 365 * 24 * time.Hour

// loadOrCreatePKI returns the cluster's certificates under dir, generating whatever is missing.
func loadOrCreatePKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &pki{
		dir:             dir,
		caCertFile:      filepath.Join(dir, "ca.crt"),
		servingCertFile: filepath.Join(dir, "apiserver.crt"),
		servingKeyFile:  filepath.Join(dir, "apiserver.key"),
		saKeyFile:       filepath.Join(dir, "sa.key"),
		saPubFile:       filepath.Join(dir, "sa.pub"),
	}
	caKeyFile := filepath.Join(dir, "ca.key")
	adminCertFile, adminKeyFile := filepath.Join(dir, "admin.crt"), filepath.Join(dir, "admin.key")

	// The CA decides everything else: if it is new, every leaf is reissued.
	caFresh := false
	caCert, caKey, err := readPair(p.caCertFile, caKeyFile)
	if err != nil {
		caFresh = true
		key, err := newKey()
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{
			Subject:               pkix.Name{CommonName: "inferfleet-local-ca"},
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		}
		caCert, err = sign(tmpl, key, nil, nil)
		if err != nil {
			return nil, err
		}
		caKey = key
		if err := writePair(p.caCertFile, caKeyFile, caCert, caKey); err != nil {
			return nil, err
		}
	}
	caX509, err := x509.ParseCertificate(caCert.Raw)
	if err != nil {
		return nil, err
	}

	leaf := func(certFile, keyFile string, tmpl *x509.Certificate) ([]byte, []byte, error) {
		if !caFresh {
			if c, k, err := readPair(certFile, keyFile); err == nil && c.CheckSignatureFrom(caX509) == nil {
				return pemCert(c.Raw), mustPEMKey(k), nil
			}
		}
		key, err := newKey()
		if err != nil {
			return nil, nil, err
		}
		c, err := sign(tmpl, key, caX509, caKey)
		if err != nil {
			return nil, nil, err
		}
		if err := writePair(certFile, keyFile, c, key); err != nil {
			return nil, nil, err
		}
		return pemCert(c.Raw), mustPEMKey(key), nil
	}

	if _, _, err := leaf(p.servingCertFile, p.servingKeyFile, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1"), net.IPv6loopback},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
	}); err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	p.adminCert, p.adminKey, err = leaf(adminCertFile, adminKeyFile, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("admin certificate: %w", err)
	}

	// Service-account signing key: independent of the CA, kept across restarts so tokens stay valid.
	_, errKey := os.Stat(p.saKeyFile)
	_, errPub := os.Stat(p.saPubFile)
	if errKey != nil || errPub != nil {
		key, err := newKey()
		if err != nil {
			return nil, err
		}
		pub, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(p.saPubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p.saKeyFile, mustPEMKey(key), 0o600); err != nil {
			return nil, err
		}
	}
	p.caCert, p.caKey = pemCert(caCert.Raw), mustPEMKey(caKey)
	return p, nil
}

// ECDSA P-256 keeps generation instant; kube-apiserver accepts it for TLS and for ES256 tokens.
func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func sign(tmpl *x509.Certificate, key *ecdsa.PrivateKey, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	if tmpl.NotAfter.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour) // tolerate small clock skew
		tmpl.NotAfter = time.Now().Add(certValidity)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func mustPEMKey(key *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		panic(err) // only fails for unsupported curves
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func writePair(certFile, keyFile string, c *x509.Certificate, k *ecdsa.PrivateKey) error {
	if err := os.WriteFile(keyFile, mustPEMKey(k), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, pemCert(c.Raw), 0o644)
}

func readPair(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	cblock, _ := pem.Decode(cb)
	kblock, _ := pem.Decode(kb)
	if cblock == nil || kblock == nil {
		return nil, nil, errors.New("malformed PEM")
	}
	c, err := x509.ParseCertificate(cblock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	k, err := x509.ParseECPrivateKey(kblock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	if time.Until(c.NotAfter) < 24*time.Hour {
		return nil, nil, errors.New("certificate about to expire")
	}
	return c, k, nil
}

// IssueKubeconfig returns a kubeconfig for a new client certificate of user (in groups),
// signed by the cluster's CA: another identity for the same cluster, as a credential
// rotation produces. Grant it what it needs with RBAC; the certificate is not stored.
func (c *Cluster) IssueKubeconfig(user string, groups []string) ([]byte, error) {
	return c.IssueKubeconfigValid(user, groups, time.Time{}, time.Time{})
}

// IssueKubeconfigValid is IssueKubeconfig with a certificate valid from notBefore to
// notAfter (the usual validity when notAfter is zero): an expired credential, say.
func (c *Cluster) IssueKubeconfigValid(user string, groups []string, notBefore, notAfter time.Time) ([]byte, error) {
	if c.pki == nil {
		return nil, fmt.Errorf("%s is attached: its CA is not this fleet's", c.Name)
	}
	caBlock, _ := pem.Decode(c.pki.caCert)
	keyBlock, _ := pem.Decode(c.pki.caKey)
	if caBlock == nil || keyBlock == nil {
		return nil, errors.New("cluster CA is not loaded")
	}
	ca, err := x509.ParseCertificate(caBlock.Bytes)
	if err != nil {
		return nil, err
	}
	caKey, err := x509.ParseECPrivateKey(keyBlock.Bytes)
	if err != nil {
		return nil, err
	}
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	cert, err := sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: user, Organization: groups},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		NotBefore:   notBefore, NotAfter: notAfter,
	}, key, ca, caKey)
	if err != nil {
		return nil, err
	}
	return kubeconfigWith(c.Name, c.Server, c.pki.caCert, user, pemCert(cert.Raw), mustPEMKey(key))
}
