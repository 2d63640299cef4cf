package origination

import "testing"

func TestSecretNames(t *testing.T) {
	cases := map[string]struct {
		in         Source
		client, ca string
	}{
		"credential": {
			in:     Source{CredentialName: "partner-mtls"},
			client: "egressd-client/partner-mtls",
			ca:     "egressd-ca/partner-mtls",
		},
		"credential wins over files": {
			in:     Source{CredentialName: "partner-mtls", CertFile: "/c", KeyFile: "/k", CAFile: "/ca"},
			client: "egressd-client/partner-mtls",
			ca:     "egressd-ca/partner-mtls",
		},
		"files": {
			in:     Source{CertFile: "/etc/certs/client.pem", KeyFile: "/etc/certs/key.pem", CAFile: "/etc/certs/ca.pem"},
			client: "egressd-client/file:/etc/certs/client.pem,/etc/certs/key.pem",
			ca:     "egressd-ca/file:/etc/certs/ca.pem",
		},
		"no CA: system bundle": {
			in:     Source{CertFile: "/c", KeyFile: "/k"},
			client: "egressd-client/file:/c,/k",
			ca:     SystemCASecret,
		},
		"empty": {
			in:     Source{},
			client: "egressd-client/file:,",
			ca:     "egressd-ca/system",
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if got := ClientSecretName(c.in); got != c.client {
				t.Errorf("ClientSecretName = %q, want %q", got, c.client)
			}
			if got := CASecretName(c.in); got != c.ca {
				t.Errorf("CASecretName = %q, want %q", got, c.ca)
			}
		})
	}
}
