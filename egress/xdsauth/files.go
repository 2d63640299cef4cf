package xdsauth

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/egressd/egressd/egress/identity"
	"github.com/egressd/egressd/origination/pemfile"
)

// The gateway's xDS client credentials, as files of one folder: the
// managed Envoy's (written by WriteCredentials into --run-dir) and, with
// the same names as the keys of a Kubernetes Secret, a gateway pod's
// (mounted from the Secret egressd keeps). Envoy reads the two SDS files
// and reloads them when the folder's ..data link is swapped.
const (
	// FileTLSCertificate is an SDS file (a DiscoveryResponse) holding the
	// Secret SecretClientCert: the client certificate chain and key.
	FileTLSCertificate = "tls-certificate.yaml"
	// FileValidationContext is an SDS file holding the Secret
	// SecretTrustBundle: the mesh CA bundle egressd's certificate chains
	// to.
	FileValidationContext = "validation-context.yaml"
	// FileCert, FileKey and FileCA are the same as PEM, for other tools.
	FileCert = "tls.crt"
	FileKey  = "tls.key"
	FileCA   = "ca.crt"
)

// Names of the SDS secrets in the credential files.
const (
	SecretClientCert  = "egressd-xds/client-cert"
	SecretTrustBundle = "egressd-xds/trust-bundle"
)

// CredentialFiles renders a client certificate as the files of a
// credential folder, by name.
func CredentialFiles(c identity.Issued) (map[string][]byte, error) {
	cert, err := sdsFile(&tlsv3.Secret{Name: SecretClientCert, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: inlineString(c.ChainPEM),
		PrivateKey:       inlineString(c.KeyPEM),
	}}})
	if err != nil {
		return nil, err
	}
	bundle, err := sdsFile(&tlsv3.Secret{Name: SecretTrustBundle, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: inlineString(c.BundlePEM),
	}}})
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		FileTLSCertificate:    cert,
		FileValidationContext: bundle,
		FileCert:              c.ChainPEM,
		FileKey:               c.KeyPEM,
		FileCA:                c.BundlePEM,
	}, nil
}

// WriteCredentials writes c's credential files into dir, all at once (see
// pemfile.WriteDir): mode 0600 files in a 0700 folder.
func WriteCredentials(dir string, c identity.Issued) error {
	files, err := CredentialFiles(c)
	if err != nil {
		return err
	}
	if err := pemfile.WriteDir(dir, files); err != nil {
		return fmt.Errorf("writing the gateway's xDS credentials to %s: %w", dir, err)
	}
	return nil
}

// sdsFile renders one secret as an SDS DiscoveryResponse in YAML.
func sdsFile(s *tlsv3.Secret) ([]byte, error) {
	if err := s.ValidateAll(); err != nil {
		return nil, fmt.Errorf("secret %s: %w", s.Name, err)
	}
	a, err := anypb.New(s)
	if err != nil {
		return nil, err
	}
	j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(&discoveryv3.DiscoveryResponse{Resources: []*anypb.Any{a}})
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}

func inlineString(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: string(b)}}
}
