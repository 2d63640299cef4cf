package source

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestCredentialSecret: the leader keeps the Secret's data equal to Files
// (on start, on Notify, and after someone edits it); a follower writes
// nothing; a missing Secret is not created.
func TestCredentialSecret(t *testing.T) {
	kube := fake.NewClientset(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "egressd-system", Name: "gw-xds"}})
	var files atomic.Pointer[map[string][]byte]
	files.Store(&map[string][]byte{"tls.crt": []byte("one")})
	var leader atomic.Bool
	c := &CredentialSecret{
		Kube: kube, Namespace: "egressd-system", Name: "gw-xds", Interval: 20 * time.Millisecond,
		Files:    func() (map[string][]byte, error) { return *files.Load(), nil },
		IsLeader: leader.Load,
	}
	get := func() map[string][]byte {
		s, err := kube.CoreV1().Secrets("egressd-system").Get(context.Background(), "gw-xds", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s.Data
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Start(ctx) }()
	time.Sleep(100 * time.Millisecond)
	if len(get()) != 0 {
		t.Fatal("a follower wrote the Secret")
	}
	leader.Store(true)
	wait := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for string(get()["tls.crt"]) != want {
			if time.Now().After(deadline) {
				t.Fatalf("Secret holds %q, want %q", get()["tls.crt"], want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait("one")
	files.Store(&map[string][]byte{"tls.crt": []byte("two")})
	c.Notify()
	wait("two")
	s, _ := kube.CoreV1().Secrets("egressd-system").Get(context.Background(), "gw-xds", metav1.GetOptions{})
	s.Data = map[string][]byte{"tls.crt": []byte("tampered")}
	if _, err := kube.CoreV1().Secrets("egressd-system").Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("two")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	missing := &CredentialSecret{Kube: fake.NewClientset(), Namespace: "egressd-system", Name: "gw-xds",
		Files: func() (map[string][]byte, error) { return *files.Load(), nil }}
	missing.reconcile(context.Background())
	if _, err := missing.Kube.CoreV1().Secrets("egressd-system").Get(context.Background(), "gw-xds", metav1.GetOptions{}); err == nil {
		t.Error("a missing Secret was created")
	}
}
