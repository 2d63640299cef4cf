package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/egressd/egressd/origination/pemfile"
)

// secretKeys are the Secret keys a credential folder holds: a
// kubernetes.io/tls Secret's (also used by generic Secrets) and Istio's
// generic form. No other key is written.
var secretKeys = []string{"tls.crt", "tls.key", "ca.crt", "cert", "key", "cacert"}

// dataLink is the link that names the current timestamped folder, as the
// kubelet lays out a mounted Secret.
const dataLink = "..data"

// SecretMirror writes the Secrets that DestinationRules name by
// credentialName into a credential folder, in the layout origination reads
// (the kubelet's: files are links through ..data to a timestamped folder,
// swapped atomically), so the origination store's existing watcher picks
// up creation, rotation and deletion. Only Secrets in Namespace are read
// (Istio's egress gateway reads credentials from its own namespace).
//
// The mirror owns the folders of the names it is told to Want: a wanted
// name whose Secret does not exist (once the informer has listed) has no
// folder, so the clusters that need it fail closed. Dir should be a
// folder of its own. Secret contents are never logged.
type SecretMirror struct {
	Kube      kubernetes.Interface
	Namespace string // where credential Secrets live
	Dir       string // the credential folder (egressd's --cert-dir)
	Log       *zap.Logger

	mu      sync.Mutex
	want    map[string]bool
	written map[string][sha256.Size]byte // digest of what each folder holds
	lister  corelisters.SecretNamespaceLister
	synced  bool // the informer has listed once: absent means deleted
}

// ValidCredentialName reports why name cannot be a credential folder: it
// must be a DNS-1123 subdomain (a Secret name), so never a path.
func ValidCredentialName(name string) error {
	if strings.ContainsAny(name, `/\`) || strings.Contains(name, "..") {
		return fmt.Errorf("credentialName %q: must be a Secret name, not a path", name)
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("credentialName %q: not a Secret name: %s", name, strings.Join(errs, "; "))
	}
	return nil
}

func (m *SecretMirror) log() *zap.Logger {
	if m.Log == nil {
		return zap.NewNop()
	}
	return m.Log
}

// Want sets the credential names the configuration refers to (others are
// not written; a folder for a name no longer wanted is removed). Names that
// are not Secret names are refused (logged). A newly wanted name whose
// Secret is already known is written before Want returns.
func (m *SecretMirror) Want(names []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := make(map[string]bool, len(names))
	for _, n := range names {
		if err := ValidCredentialName(n); err != nil {
			m.log().Warn("credential not mirrored", zap.Error(err))
			continue
		}
		next[n] = true
	}
	old := m.want
	m.want = next
	for n := range old {
		if !next[n] {
			m.remove(n)
		}
	}
	for n := range next {
		m.reconcile(n)
	}
}

// Start runs a Secret informer in Namespace until ctx ends, writing wanted
// Secrets when they are added or updated and removing their folders when
// they are deleted. API errors never end it (client-go retries).
func (m *SecretMirror) Start(ctx context.Context) error {
	if m.Kube == nil {
		return errors.New("secret mirror: Kube client is required")
	}
	if m.Dir == "" {
		return errors.New("secret mirror: Dir is required")
	}
	if err := os.MkdirAll(m.Dir, 0o700); err != nil {
		return fmt.Errorf("secret mirror: %w", err)
	}
	f := informers.NewSharedInformerFactoryWithOptions(m.Kube, 0, informers.WithNamespace(m.Namespace))
	secrets := f.Core().V1().Secrets()
	inf := secrets.Informer()
	name := func(obj any) string {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if s, ok := obj.(*corev1.Secret); ok {
			return s.Name
		}
		return ""
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { m.changed(name(obj)) },
		UpdateFunc: func(_, obj any) { m.changed(name(obj)) },
		DeleteFunc: func(obj any) { m.changed(name(obj)) },
	}); err != nil {
		return err
	}
	m.mu.Lock()
	m.lister = secrets.Lister().Secrets(m.Namespace)
	m.mu.Unlock()
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil
	}
	m.mu.Lock()
	m.synced = true
	for n := range m.want {
		m.reconcile(n) // wanted Secrets that do not exist: no folder
	}
	m.mu.Unlock()
	m.log().Info("credential secrets synced", zap.String("namespace", m.Namespace), zap.String("dir", m.Dir))
	<-ctx.Done()
	return nil
}

// changed brings the folder of one Secret in line with the cache.
func (m *SecretMirror) changed(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.want[name] {
		m.reconcile(name)
	}
}

// reconcile writes a wanted name's Secret from the cache, or removes its
// folder when the Secret is gone. m.mu is held.
func (m *SecretMirror) reconcile(name string) {
	if m.lister == nil {
		return // not started: Start reconciles once synced
	}
	s, err := m.lister.Get(name)
	switch {
	case apierrors.IsNotFound(err):
		if m.synced {
			m.remove(name)
		}
		return
	case err != nil:
		m.log().Warn("credential secret not read", zap.String("secret", m.Namespace+"/"+name), zap.Error(err))
		return
	}
	files := map[string][]byte{}
	for _, k := range secretKeys {
		if v, ok := s.Data[k]; ok {
			files[k] = v
		}
	}
	sum := digest(files)
	if old, ok := m.written[name]; ok && old == sum {
		return
	}
	if len(files) == 0 {
		m.log().Warn("credential secret has none of the expected keys",
			zap.String("secret", m.Namespace+"/"+name), zap.Strings("want_one_of", secretKeys))
	}
	if err := writeCredential(filepath.Join(m.Dir, name), files); err != nil {
		m.log().Error("credential secret not written", zap.String("secret", m.Namespace+"/"+name), zap.Error(err))
		delete(m.written, name)
		return
	}
	if m.written == nil {
		m.written = map[string][sha256.Size]byte{}
	}
	m.written[name] = sum
	m.log().Info("credential secret written", zap.String("secret", m.Namespace+"/"+name),
		zap.Strings("keys", sortedKeys(files)))
}

// remove deletes the folder of name. m.mu is held.
func (m *SecretMirror) remove(name string) {
	delete(m.written, name)
	dir := filepath.Join(m.Dir, name)
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		m.log().Error("credential folder not removed", zap.String("folder", dir), zap.Error(err))
		return
	}
	m.log().Info("credential folder removed", zap.String("folder", dir))
}

// writeCredential lays files out in dir as the kubelet does (see
// pemfile.WriteDir).
func writeCredential(dir string, files map[string][]byte) error { return pemfile.WriteDir(dir, files) }

// digest identifies a folder's content without keeping it.
func digest(files map[string][]byte) [sha256.Size]byte {
	var b bytes.Buffer
	for _, k := range sortedKeys(files) {
		fmt.Fprintf(&b, "%s\x00%d\x00", k, len(files[k]))
		b.Write(files[k])
	}
	return sha256.Sum256(b.Bytes())
}

func sortedKeys(files map[string][]byte) []string {
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
