package source

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const mirrorNS = "egressd-system"

// startMirror runs a SecretMirror over a fake clientset holding objs and
// waits until its informer has synced and watches (the fake does not
// replay changes made between list and watch).
func startMirror(t *testing.T, want []string, objs ...runtime.Object) (*SecretMirror, *kubefake.Clientset) {
	t.Helper()
	kc := kubefake.NewClientset(objs...)
	watching := make(chan struct{})
	var once sync.Once
	kc.PrependWatchReactor("secrets", func(k8stesting.Action) (bool, watch.Interface, error) {
		once.Do(func() { close(watching) })
		return false, nil, nil
	})
	m := &SecretMirror{Kube: kc, Namespace: mirrorNS, Dir: filepath.Join(t.TempDir(), "credentials")}
	m.Want(want)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Start: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Start did not return after cancel")
		}
	})
	select {
	case <-watching:
	case <-time.After(5 * time.Second):
		t.Fatal("secret informer never watched")
	}
	eventually(t, "synced", func() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.synced })
	return m, kc
}

// settled runs ok under the mirror's lock, so that it sees only completed
// writes (the file links of a folder appear one by one).
func (m *SecretMirror) settled(ok func() bool) func() bool {
	return func() bool { m.mu.Lock(); defer m.mu.Unlock(); return ok() }
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func tlsSecret(name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: mirrorNS, Name: name},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{},
	}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func readFile(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// dataTarget is the timestamped folder ..data names.
func dataTarget(t *testing.T, dir string) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.IsAbs(target) || strings.Contains(target, "/") || !strings.HasPrefix(target, "..") {
		t.Fatalf("..data -> %q, want a sibling timestamped folder", target)
	}
	return target
}

func TestSecretMirrorLifecycle(t *testing.T) {
	m, kc := startMirror(t, []string{"client"})
	ctx := context.Background()
	dir := filepath.Join(m.Dir, "client")
	secrets := kc.CoreV1().Secrets(mirrorNS)

	// Create: the files appear, as links through ..data, private.
	s := tlsSecret("client", map[string]string{"tls.crt": "CERT1", "tls.key": "KEY1", "ca.crt": "CA1", "other": "x"})
	if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "files", m.settled(func() bool { return readFile(filepath.Join(dir, "tls.key")) == "KEY1" }))
	for k, v := range map[string]string{"tls.crt": "CERT1", "ca.crt": "CA1"} {
		if got := readFile(filepath.Join(dir, k)); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
		if l, err := os.Readlink(filepath.Join(dir, k)); err != nil || l != filepath.Join("..data", k) {
			t.Errorf("%s links to %q (%v), want ..data/%s", k, l, err, k)
		}
	}
	if exists(filepath.Join(dir, "other")) {
		t.Error("a key that is not a credential file was written")
	}
	first := dataTarget(t, dir)
	for p, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, first): 0o700, filepath.Join(dir, first, "tls.key"): 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}

	// Update: ..data swapped to a new folder, the old one removed; a key
	// that changed form (tls.crt -> cert) leaves no stale link.
	s = tlsSecret("client", map[string]string{"cert": "CERT2", "key": "KEY2", "cacert": "CA2"})
	if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "rotation", m.settled(func() bool { return readFile(filepath.Join(dir, "key")) == "KEY2" }))
	second := dataTarget(t, dir)
	if second == first {
		t.Errorf("..data still -> %s after the update", first)
	}
	if exists(filepath.Join(dir, first)) {
		t.Errorf("old folder %s not removed", first)
	}
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if exists(filepath.Join(dir, k)) {
			t.Errorf("stale %s left after the update", k)
		}
	}
	if got := readFile(filepath.Join(dir, "cacert")); got != "CA2" {
		t.Errorf("cacert = %q", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 5 { // ..data, the folder, cert, key, cacert
		t.Errorf("folder holds %d entries, want 5: %v", len(entries), entries)
	}

	// Delete: the folder goes.
	if err := secrets.Delete(ctx, "client", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "removal", m.settled(func() bool { return !exists(dir) }))
}

func TestSecretMirrorWant(t *testing.T) {
	m, _ := startMirror(t, []string{"a"},
		tlsSecret("a", map[string]string{"tls.crt": "A"}),
		tlsSecret("b", map[string]string{"tls.crt": "B"}),
	)
	a, b := filepath.Join(m.Dir, "a"), filepath.Join(m.Dir, "b")
	eventually(t, "a written", m.settled(func() bool { return readFile(filepath.Join(a, "tls.crt")) == "A" }))
	if exists(b) {
		t.Error("a Secret nobody wants was written")
	}

	// Newly wanted: written from the cache before Want returns.
	m.Want([]string{"a", "b"})
	if got := readFile(filepath.Join(b, "tls.crt")); got != "B" {
		t.Errorf("b/tls.crt = %q after Want", got)
	}

	// No longer wanted: its folder is removed.
	m.Want([]string{"b"})
	if exists(a) {
		t.Error("folder of a name no longer wanted was kept")
	}
	if !exists(b) {
		t.Error("folder of a wanted name was removed")
	}

	// Wanted but missing: no folder (fail closed).
	m.Want([]string{"b", "missing"})
	if exists(filepath.Join(m.Dir, "missing")) {
		t.Error("folder for a missing Secret")
	}
}

func TestSecretMirrorRefusesPaths(t *testing.T) {
	for _, name := range []string{"../evil", "a/b", "..", ".", "a..b", "/abs", "UPPER", ""} {
		if err := ValidCredentialName(name); err == nil {
			t.Errorf("ValidCredentialName(%q) = nil, want an error", name)
		}
	}
	for _, name := range []string{"client", "egress.tls-1"} {
		if err := ValidCredentialName(name); err != nil {
			t.Errorf("ValidCredentialName(%q) = %v", name, err)
		}
	}

	// The fake clientset accepts any name; the mirror writes none of these.
	m, _ := startMirror(t, []string{"../evil", "a/b", "ok"},
		tlsSecret("../evil", map[string]string{"tls.crt": "X"}),
		tlsSecret("a/b", map[string]string{"tls.crt": "X"}),
		tlsSecret("ok", map[string]string{"tls.crt": "OK"}),
	)
	eventually(t, "ok written", m.settled(func() bool { return readFile(filepath.Join(m.Dir, "ok", "tls.crt")) == "OK" }))
	if exists(filepath.Join(filepath.Dir(m.Dir), "evil")) || exists(filepath.Join(m.Dir, "a")) {
		t.Error("a path-like Secret name was written")
	}
	entries, _ := os.ReadDir(m.Dir)
	if len(entries) != 1 {
		t.Errorf("credential folder holds %v, want only ok", entries)
	}
}
