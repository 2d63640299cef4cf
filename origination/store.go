package origination

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Defaults of StoreConfig.
const (
	DefaultExpiryWarning = 30 * 24 * time.Hour
	DefaultResync        = time.Minute
)

// StoreConfig configures a Store.
type StoreConfig struct {
	// CertDir is the folder credential names resolve under (--cert-dir).
	CertDir string
	// Log receives reloads, failures and expiry warnings; nil means none.
	Log *zap.Logger
	// Registerer gets the store's metrics; nil means none are registered.
	Registerer prometheus.Registerer
	// ExpiryWarning is how long before a client certificate's NotAfter a
	// warning is logged (once a day); DefaultExpiryWarning when <= 0.
	ExpiryWarning time.Duration
	// Resync is how often every secret is loaded again, for expiry and for
	// changes fsnotify missed (NFS, overflows); DefaultResync when <= 0.
	Resync time.Duration
	// OnChange, when set, is called from Run's goroutine after the content
	// of Secrets changed, so egressd can push new SDS resources. It is not
	// called for changes made by Want, whose caller sees them directly.
	OnChange func()
	// Now is the clock validity is checked against; time.Now when nil.
	Now func() time.Time
}

// Store holds the material every currently wanted secret needs, reloads it
// when its files change, and serves it as Envoy SDS resources. Its methods
// are safe for concurrent use.
type Store struct {
	cfg     StoreConfig
	log     *zap.Logger
	metrics *metrics
	kick    chan struct{} // Want tells Run to watch a new set of folders

	update  sync.Mutex // serialises Want and reloads
	entries map[string]*entry

	mu      sync.RWMutex // guards what Secrets and Version return
	secrets []*tlsv3.Secret
	version string
}

// entry is one wanted secret.
type entry struct {
	name    string
	src     Source
	want    Want              // WantKeyPair or WantCA
	mat     *Material         // last good material; nil until one loads
	secret  *tlsv3.Secret     // built from mat
	sum     [sha256.Size]byte // digest(mat)
	lastErr string            // the last load error logged, "" after a success
	warned  time.Time         // when the expiry warning was last logged
}

// NewStore returns an empty Store; call Want, then Run.
func NewStore(cfg StoreConfig) *Store {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.ExpiryWarning <= 0 {
		cfg.ExpiryWarning = DefaultExpiryWarning
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Store{
		cfg:     cfg,
		log:     cfg.Log,
		metrics: newMetrics(cfg.Registerer, cfg.Log),
		kick:    make(chan struct{}, 1),
		entries: map[string]*entry{},
	}
	s.publish()
	return s
}

// Want declares the secrets the current configuration needs, replacing the
// previous set: a client key pair for each of client, a CA bundle for each
// of ca, named by ClientSecretName and CASecretName. Secrets already loaded
// are kept as they are (Run keeps them fresh); new ones, and ones that
// failed before, are loaded now. It returns one error per secret that
// cannot be loaded (name -> error), nil when all loaded; those secrets are
// absent from Secrets until their files are fixed.
func (s *Store) Want(client []Source, ca []Source) map[string]error {
	s.update.Lock()
	next := make(map[string]*entry, len(client)+len(ca))
	add := func(name string, src Source, w Want) {
		if _, dup := next[name]; dup {
			return
		}
		if e, ok := s.entries[name]; ok {
			next[name] = e
			return
		}
		next[name] = &entry{name: name, src: src, want: w}
	}
	for _, src := range client {
		add(ClientSecretName(src), src, WantKeyPair)
	}
	for _, src := range ca {
		add(CASecretName(src), src, WantCA)
	}
	for name, e := range s.entries {
		if _, ok := next[name]; !ok && e.want == WantKeyPair {
			s.metrics.expiry.DeleteLabelValues(name)
		}
	}
	s.entries = next

	var errs map[string]error
	now := s.cfg.Now()
	for _, e := range s.sorted() {
		if e.mat != nil {
			continue
		}
		if _, err := s.refresh(e, now); err != nil {
			if errs == nil {
				errs = map[string]error{}
			}
			errs[e.name] = err
			e.lastErr = err.Error()
			continue
		}
		e.lastErr = ""
		s.log.Info("tls secret loaded", s.fields(e)...)
		s.warnExpiry(e, now)
	}
	s.publish()
	s.update.Unlock()

	select {
	case s.kick <- struct{}{}:
	default:
	}
	return errs
}

// Secrets returns the current Envoy SDS resources, sorted by name: for a
// client source a Secret with a TlsCertificate (certificate chain and
// private key as inline bytes), for a CA source a Secret with a
// ValidationContext trusting the inline bundle. The resources are shared:
// do not modify them, and never log them (they hold private keys).
func (s *Store) Secrets() []*tlsv3.Secret {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.secrets)
}

// Version changes whenever the set of secrets or any secret's content
// changes, and only then. It is a digest of the secrets' SHA-256 digests,
// so it reveals nothing of the keys.
func (s *Store) Version() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.version
}

// sorted returns the entries by name. The caller holds s.update.
func (s *Store) sorted() []*entry {
	out := make([]*entry, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *entry) int { return strings.Compare(a.name, b.name) })
	return out
}

// publish makes the entries' current material what Secrets and Version
// return. The caller holds s.update.
func (s *Store) publish() {
	var secrets []*tlsv3.Secret
	h := sha256.New()
	for _, e := range s.sorted() {
		if e.secret == nil {
			continue
		}
		secrets = append(secrets, e.secret)
		h.Write([]byte(e.name))
		h.Write([]byte{0})
		h.Write(e.sum[:])
	}
	version := hex.EncodeToString(h.Sum(nil)[:16])
	s.mu.Lock()
	s.secrets, s.version = secrets, version
	s.mu.Unlock()
}
