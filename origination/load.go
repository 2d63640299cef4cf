package origination

import (
	"errors"
	"fmt"
	"time"
)

// Load reads and checks material from files. want selects what must be
// present: WantKeyPair, WantCA, or both. certDir resolves a CredentialName;
// now is the time validity is checked against.
//
// Each failed check is an error naming the file: PEM that does not decode;
// a key that does not match the leaf; a chain out of order (each
// certificate must be signed by the next); a certificate not valid at now
// (wrapping ErrExpired or ErrNotYetValid); a key type Envoy does not accept
// for client certificates; a CA bundle without a certificate or with a
// private key. A CA source with neither CredentialName nor CAFile loads the
// system trust bundle.
func Load(src Source, certDir string, want Want, now time.Time) (*Material, error) {
	if want&(WantKeyPair|WantCA) == 0 {
		return nil, errors.New("origination.Load: want neither a key pair nor a CA bundle")
	}
	p, err := resolve(src, certDir, want)
	if err != nil {
		return nil, err
	}
	m := &Material{}
	if want&WantKeyPair != 0 {
		if err := loadKeyPair(m, p, now); err != nil {
			return nil, err
		}
	}
	if want&WantCA != 0 {
		if m.CAPEM, err = loadCA(p.ca, p.systemCA); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// loadKeyPair fills m's chain, key and leaf from p.cert and p.key.
func loadKeyPair(m *Material, p paths, now time.Time) error {
	chainPEM, chain, err := loadChain(p.cert)
	if err != nil {
		return err
	}
	keyPEM, key, err := loadKey(p.key)
	if err != nil {
		return err
	}
	leaf := chain[0]
	if err := checkKeyType(leaf.PublicKey); err != nil {
		return fmt.Errorf("%s: %w", p.cert, err)
	}
	if err := checkKeyMatch(key, chain); err != nil {
		return fmt.Errorf("%s and %s: %w", p.cert, p.key, err)
	}
	if err := checkChainOrder(chain); err != nil {
		return fmt.Errorf("%s: %w", p.cert, err)
	}
	if err := checkValidity(chain, now); err != nil {
		return fmt.Errorf("%s: %w", p.cert, err)
	}
	m.CertChainPEM, m.KeyPEM, m.Leaf = chainPEM, keyPEM, leaf
	m.NotBefore, m.NotAfter = leaf.NotBefore, leaf.NotAfter
	return nil
}
